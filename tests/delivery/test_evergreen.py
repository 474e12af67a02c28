"""The evergreen sequence with real worker processes and a real SMTP sink.

A reader who chose to start from the first tip gets the archived tips in date order, one per
EVERGREEN_INTERVAL (1 s here), each once, through the same ledger as a live send: a tip they
got live is passed over; a killed worker loses and doubles nothing; leaving stops the
sequence and rejoining goes on where it stopped.
"""

from __future__ import annotations

import collections
import signal
import time
from datetime import UTC, datetime, timedelta
from email import message_from_bytes, policy
from email.message import EmailMessage
from typing import Any, cast

import pytest
import sqlalchemy as sa

from newsletter.extensions import db
from newsletter.models import (
    Delivery,
    DeliveryStatus,
    Issue,
    IssueStatus,
    Subscriber,
    SubscriberStatus,
    utcnow,
)
from newsletter.subscribers import manage, sequence
from newsletter.subscribers.state import Action, transition

pytestmark = pytest.mark.slow
FAST_SEQUENCE = pytest.mark.world(EVERGREEN_INTERVAL=1)


def _tips(count: int, live: tuple[int, ...] = ()) -> list[int]:
    """Add ``count`` back-catalogue tips, one a day from 2020; those in ``live`` were sent here."""
    ids = []
    start = datetime(2020, 1, 1, 9, tzinfo=UTC)
    for n in range(1, count + 1):
        issue = Issue(
            subject=f"Old tip {n:02d}",
            body_md=f"The body of old tip {n}.",
            slug=f"old-tip-{n}",
            status=IssueStatus.SENT if n in live else IssueStatus.ARCHIVED,
            sent_at=start + timedelta(days=n),
        )
        db.session.add(issue)
        db.session.flush()
        ids.append(issue.id)
    db.session.commit()
    return ids


def _readers(count: int, *, due: bool = True) -> list[str]:
    emails = [f"reader{i}@example.com" for i in range(count)]
    now = utcnow()
    db.session.execute(
        sa.insert(Subscriber),
        [
            {
                "email": e,
                "name": "",
                "status": SubscriberStatus.CONFIRMED,
                "evergreen": True,
                "evergreen_due_at": now if due else None,
            }
            for e in emails
        ],
    )
    db.session.commit()
    return emails


def _reader(email: str) -> Subscriber:
    db.session.remove()
    found = db.session.scalar(sa.select(Subscriber).where(Subscriber.email == email))
    assert found is not None
    return found


def _mails(world: Any, email: str) -> list[EmailMessage]:
    return [
        cast(EmailMessage, message_from_bytes(a.raw, policy=policy.default))
        for a in world.sink.to(email)
    ]


def _subjects(world: Any, email: str) -> list[str]:
    return [str(m["Subject"]) for m in _mails(world, email)]


def _text(mail: EmailMessage) -> str:
    part = mail.get_body(("plain",))
    assert part is not None
    return cast(str, part.get_content())


def _wait(world: Any, check: Any, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError("timed out")
        time.sleep(0.05)


def _finished(email: str, total: int) -> bool:
    """The reader has had every tip and no evergreen copy is open."""
    reader = _reader(email)
    open_rows = db.session.scalar(
        sa.select(sa.func.count())
        .select_from(Delivery)
        .where(
            Delivery.subscriber_id == reader.id,
            Delivery.status.in_((DeliveryStatus.QUEUED, DeliveryStatus.SENDING)),
        )
    )
    done = reader.evergreen_position == total and reader.evergreen_due_at is None
    db.session.rollback()  # hold no transaction (on SQLite it would hold the write lock)
    return done and not open_rows


@FAST_SEQUENCE
def test_tips_in_order_each_once_and_a_live_tip_is_not_sent_again(world):
    ids = _tips(4, live=(3,))
    (email,) = _readers(1)
    reader = _reader(email)
    # Tip 3 reached this reader when it went out live.
    db.session.add(
        Delivery(
            issue_id=ids[2], subscriber_id=reader.id, status=DeliveryStatus.SENT, sent_at=utcnow()
        )
    )
    db.session.commit()
    world.worker()
    _wait(world, lambda: _finished(email, 4))
    # One more tick after the end hands out nothing.
    time.sleep(1.5)
    assert _subjects(world, email) == ["Old tip 01", "Old tip 02", "Old tip 04"]
    texts = [_text(m) for m in _mails(world, email)]
    assert "Tip 1 of 4" in texts[0]
    assert "Tip 2 of 4" in texts[1]
    assert "Tip 4 of 4" in texts[2]
    assert texts[0].index("Tip 1 of 4") < texts[0].index("The body of old tip 1.")
    # One per interval (1 s), not all at once: the ledger rows were made an interval apart
    # (the mails' own times add the send's latency, which varies).
    reader = _reader(email)
    made = db.session.scalars(
        sa.select(Delivery.sent_at)
        .where(Delivery.subscriber_id == reader.id, Delivery.batch == -1)
        .order_by(Delivery.id)
    ).all()
    db.session.rollback()
    assert len(made) == 3  # tips 1, 2 and 4: tip 3 kept its live row
    gaps = [(b - a).total_seconds() for a, b in zip(made, made[1:], strict=False)]
    assert all(gap >= 0.3 for gap in gaps), gaps


@FAST_SEQUENCE
def test_kill_9_in_the_middle_of_the_sequence_skips_and_doubles_no_tip(world):
    _tips(6)
    emails = _readers(40)
    a, _b = world.worker(), world.worker()
    _wait(world, lambda: len(world.sink.accepted) >= 90)
    a.send_signal(signal.SIGKILL)
    a.wait()
    world.worker()
    _wait(world, lambda: all(_finished(e, 6) for e in emails), timeout=120)
    expected = [f"Old tip {n:02d}" for n in range(1, 7)]
    copies = collections.Counter(a.rcpt for a in world.sink.accepted)
    doubled = {e: n for e, n in copies.items() if n > 6}
    # Only a copy on the wire when its worker died can go twice (the live send's one rule):
    # the same message, by its Message-ID. Every reader has every tip, in order.
    assert sum(n - 6 for n in doubled.values()) <= 1, doubled
    for email in emails:
        subjects = list(dict.fromkeys(_subjects(world, email)))
        assert subjects == expected, (email, subjects)
    for email in doubled:
        ids = [a.message_id for a in world.sink.to(email)]
        assert len(ids) - len(set(ids)) == 1
    sent = db.session.scalar(
        sa.select(sa.func.count())
        .select_from(Delivery)
        .where(Delivery.batch == -1, Delivery.status == DeliveryStatus.SENT)
    )
    assert sent == 40 * 6


@FAST_SEQUENCE
def test_leaving_stops_the_sequence_and_rejoining_goes_on_where_it_stopped(world):
    _tips(5)
    (email,) = _readers(1)
    world.worker()
    _wait(world, lambda: len(world.sink.to(email)) >= 2)
    reader = _reader(email)
    sequence.leave(reader)
    db.session.commit()
    got = len(world.sink.to(email))  # 2, or 3 if one was on its way as they left
    time.sleep(3)  # three intervals: nothing more comes
    assert len(world.sink.to(email)) == got
    reader = _reader(email)
    assert reader.evergreen_due_at is None
    sequence.join(reader)
    db.session.commit()
    _wait(world, lambda: _finished(email, 5))
    assert _subjects(world, email) == [f"Old tip {n:02d}" for n in range(1, 6)]


@FAST_SEQUENCE
def test_a_pause_stops_the_sequence_and_the_end_of_it_goes_on(world):
    _tips(3)
    (email,) = _readers(1)
    world.worker()
    _wait(world, lambda: len(world.sink.to(email)) >= 1)
    reader = _reader(email)
    reader.paused_until = utcnow() + timedelta(days=7)
    db.session.commit()
    got = len(world.sink.to(email))
    time.sleep(3)
    assert len(world.sink.to(email)) == got
    reader = _reader(email)
    manage.resume(db.session(), reader)
    db.session.commit()
    _wait(world, lambda: _finished(email, 3))
    assert _subjects(world, email) == ["Old tip 01", "Old tip 02", "Old tip 03"]


@FAST_SEQUENCE
def test_an_unsubscribe_stops_the_sequence_and_coming_back_goes_on(world):
    _tips(3)
    (email,) = _readers(1)
    world.worker()
    _wait(world, lambda: len(world.sink.to(email)) >= 1)
    reader = _reader(email)
    reader.status = SubscriberStatus.UNSUBSCRIBED
    db.session.commit()
    got = len(world.sink.to(email))
    time.sleep(3)
    assert len(world.sink.to(email)) == got
    reader = _reader(email)
    transition(db.session(), reader, Action.CONFIRM)
    db.session.commit()
    _wait(world, lambda: _finished(email, 3))
    assert _subjects(world, email) == ["Old tip 01", "Old tip 02", "Old tip 03"]
