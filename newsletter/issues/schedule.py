"""The weekly slot: which slot instant is due now, in the slot's own time zone (DST-aware)."""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta

from newsletter.config import WeeklySlot as Slot


def _instant(day: datetime, slot: Slot) -> datetime:
    _weekday, hour, minute, zone = slot
    local = datetime.combine(day.date(), time(hour, minute), tzinfo=zone)
    # A wall time skipped by a spring-forward change maps to the same offset's next real instant;
    # the UTC round trip normalises it, so a slot at 02:30 still happens that day.
    return local.astimezone(UTC)


def previous_slot(now: datetime, slot: Slot) -> datetime:
    """Return the latest slot instant (UTC) at or before ``now``."""
    weekday, _hour, _minute, zone = slot
    local_now = now.astimezone(zone)
    back = (local_now.weekday() - weekday) % 7
    candidate = _instant(local_now - timedelta(days=back), slot)
    if candidate > now:
        candidate = _instant(local_now - timedelta(days=back + 7), slot)
    return candidate


def next_slot(now: datetime, slot: Slot) -> datetime:
    """Return the first slot instant (UTC) strictly after ``now``."""
    weekday, _hour, _minute, zone = slot
    local_now = now.astimezone(zone)
    ahead = (weekday - local_now.weekday()) % 7
    candidate = _instant(local_now + timedelta(days=ahead), slot)
    if candidate <= now:
        candidate = _instant(local_now + timedelta(days=ahead + 7), slot)
    return candidate


def due_slot(now: datetime, slot: Slot, grace_seconds: int) -> datetime | None:
    """Return the slot instant that may still go out at ``now`` (within grace), else None."""
    last = previous_slot(now, slot)
    return last if (now - last).total_seconds() <= grace_seconds else None
