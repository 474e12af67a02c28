"""The weekly slot's maths, with fixed clocks, across DST changes."""

from __future__ import annotations

from datetime import UTC, datetime
from zoneinfo import ZoneInfo

from newsletter.config import parse_weekly_slot
from newsletter.issues.schedule import due_slot, next_slot, previous_slot

BERLIN = parse_weekly_slot("every monday at 09:00 in Europe/Berlin")


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


def test_the_previous_slot_is_the_last_monday_nine_in_berlin():
    # Wed 2025-01-15: the slot was Mon 2025-01-13 09:00 CET = 08:00 UTC.
    assert previous_slot(utc(2025, 1, 15, 12), BERLIN) == utc(2025, 1, 13, 8)
    assert next_slot(utc(2025, 1, 15, 12), BERLIN) == utc(2025, 1, 20, 8)
    # Exactly at the slot it is due; a second before, the previous week's was.
    assert previous_slot(utc(2025, 1, 13, 8), BERLIN) == utc(2025, 1, 13, 8)
    assert previous_slot(utc(2025, 1, 13, 7, 59, 59), BERLIN) == utc(2025, 1, 6, 8)


def test_summer_time_moves_the_utc_instant():
    # After the change on 2025-03-30, 09:00 Berlin is 07:00 UTC.
    assert next_slot(utc(2025, 3, 29), BERLIN) == utc(2025, 3, 31, 7)
    assert next_slot(utc(2025, 10, 22), BERLIN) == utc(2025, 10, 27, 8)


def test_a_slot_inside_the_skipped_hour_still_happens_that_day():
    slot = parse_weekly_slot("every sunday at 02:30 in Europe/Berlin")
    when = next_slot(utc(2025, 3, 29), slot)
    assert when.astimezone(ZoneInfo("Europe/Berlin")).date().isoformat() == "2025-03-30"


def test_a_missed_slot_is_due_only_within_grace():
    assert due_slot(utc(2025, 1, 13, 9), BERLIN, 2 * 3600) == utc(2025, 1, 13, 8)
    assert due_slot(utc(2025, 1, 13, 11), BERLIN, 2 * 3600) is None
