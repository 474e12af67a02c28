"""The first tip comes right after confirming (or joining), not at the next evergreen tick.

The worker here ticks only at its start (the tick's interval is 20 minutes and so is
EVERGREEN_INTERVAL): a tip that arrives after that can only have come from the job that
confirming, or joining on the reader's page, enqueued.
"""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest
import redis
import sqlalchemy as sa
from rq import Worker
from sqlalchemy.orm import Session

from newsletter.delivery import evergreen
from newsletter.extensions import db, settings
from newsletter.models import Delivery, Subscriber, SubscriberStatus, utcnow
from newsletter.services import tokens
from newsletter.tasks.evergreen import first_tip
from tests.delivery.test_evergreen import _mails, _reader, _subjects, _text, _tips, _wait
from tests.helpers.editors import page_token

pytestmark = pytest.mark.slow
NO_TICK = pytest.mark.world(
    EVERGREEN_INTERVAL=1200, RECONCILE_INTERVAL=1200, SEND_LEASE_SECONDS=3600
)


def _worker_listening(world: Any) -> None:
    """Start a worker and wait until it listens: its start-up tick is behind it then."""
    world.worker()
    client = redis.Redis.from_url(world.env["REDIS_URL"])
    try:
        _wait(world, lambda: len(Worker.all(connection=client)) > 0, timeout=60)
    finally:
        client.close()


def _add(email: str, status: SubscriberStatus, *, evergreen: bool) -> Subscriber:
    sub = Subscriber(email=email, name="", evergreen=evergreen)
    sub.status = status
    db.session.add(sub)
    db.session.commit()
    return sub


def _tips_of(world: Any, email: str) -> list[str]:
    return [s for s in _subjects(world, email) if s.startswith("Old tip")]


@NO_TICK
def test_confirming_brings_the_first_tip_at_once_and_joining_later_the_next(world):
    _tips(3)
    pending = _add("early@example.com", SubscriberStatus.PENDING, evergreen=True)
    confirm = tokens().confirm_token(pending.id, pending.version)
    later = _add("later@example.com", SubscriberStatus.CONFIRMED, evergreen=False)
    manage = f"/manage/{tokens().manage_token(later.id, later.created_at, later.email)}"
    db.session.remove()
    _worker_listening(world)
    assert _reader("early@example.com").evergreen_due_at is None  # nothing before confirming
    db.session.rollback()

    client = world.app.test_client()
    answer = client.post(f"/confirm/{confirm}")
    db.session.remove()  # the request ran in this app context: hold no transaction after it
    assert answer.status_code == 200
    _wait(world, lambda: _tips_of(world, "early@example.com") == ["Old tip 01"], timeout=30)
    tip = next(m for m in _mails(world, "early@example.com") if m["Subject"] == "Old tip 01")
    assert "Tip 1 of 3" in _text(tip)

    # A confirmed reader who joins on their own page: the first tip, now as well.
    reader = world.app.test_client()
    csrf = page_token(reader, manage)
    answer = reader.post(f"{manage}/sequence", data={"csrf_token": csrf, "action": "join"})
    db.session.remove()
    assert answer.status_code in (200, 303)
    _wait(world, lambda: _tips_of(world, "later@example.com") == ["Old tip 01"], timeout=30)
    # And then nothing more until the reader's interval: one tip, not the catalogue.
    time.sleep(1)
    assert _tips_of(world, "early@example.com") == ["Old tip 01"]
    assert _tips_of(world, "later@example.com") == ["Old tip 01"]
    early = _reader("early@example.com")
    assert early.evergreen_position == 1
    assert early.evergreen_due_at is not None and early.evergreen_due_at > utcnow()
    db.session.rollback()


def test_the_job_and_the_tick_together_hand_out_one_tip(app):
    """Whichever runs first, the reader's own job or the tick, the other finds nothing due."""
    _tips(3)
    subs = [_add(f"r{i}@example.com", SubscriberStatus.CONFIRMED, evergreen=True) for i in range(2)]
    now = utcnow()
    for sub in subs:
        sub.evergreen_due_at = now
    db.session.commit()
    first, second = (s.id for s in subs)
    db.session.remove()
    pace = settings().evergreen_interval
    # The job first, then the tick (and the job again, as a duplicate would run it).
    assert "tip" in first_tip(first, "x")
    step = evergreen.step(db.session(), utcnow(), pace)
    db.session.commit()
    assert step.queued and sum(step.queued.values()) == 1  # only the second reader
    assert "nothing due" in first_tip(first, "x")
    # The tick already handed the second reader theirs: their job finds nothing due.
    assert "nothing due" in first_tip(second, "y")
    rows = db.session.scalars(
        sa.select(Delivery.subscriber_id).where(Delivery.batch == evergreen.EVERGREEN_BATCH)
    ).all()
    db.session.rollback()
    assert sorted(rows) == sorted([first, second])


def test_a_tick_in_flight_and_the_readers_job_hand_out_one_tip(app):
    """The tick holds the reader (mid-step, not committed) while their job runs: one tip."""
    _tips(2)
    sub = _add("both@example.com", SubscriberStatus.CONFIRMED, evergreen=True)
    sub.evergreen_due_at = utcnow()
    db.session.commit()
    sid = sub.id
    db.session.remove()
    answers: list[str] = []

    def job() -> None:
        with app.app_context():
            answers.append(first_tip(sid, "race"))
            db.session.remove()

    with Session(db.engine) as tick:
        step = evergreen.step(tick, utcnow(), settings().evergreen_interval)
        assert sum(step.queued.values()) == 1
        racer = threading.Thread(target=job)
        racer.start()
        racer.join(timeout=0.5)  # PostgreSQL: skips the locked reader; SQLite: waits for it
        tick.commit()
    racer.join(timeout=30)
    assert answers == [f"evergreen: nothing due for reader {sid}"]
    rows = db.session.scalar(
        sa.select(sa.func.count()).select_from(Delivery).where(Delivery.subscriber_id == sid)
    )
    db.session.rollback()
    assert rows == 1
