"""A reader's pause: the sends skip them, counted as skipped with the reason, until it ends."""

from __future__ import annotations

from datetime import timedelta

import sqlalchemy as sa

from newsletter.delivery import plan
from newsletter.extensions import db
from newsletter.issues.actions import create_issue, issue_status
from newsletter.models import Delivery, DeliveryStatus, Subscriber, utcnow
from newsletter.subscribers import manage
from newsletter.tasks.dispatch import send_issue
from tests.helpers.sending import deliveries, send_and_wait


def _pause(email: str, weeks: int = 2) -> str:
    sub = db.session.scalar(sa.select(Subscriber).where(Subscriber.email == email))
    until = manage.pause(db.session(), sub, weeks)
    db.session.commit()
    return f"paused until {until.date().isoformat()}"


def test_a_reader_paused_at_queueing_is_skipped_with_the_reason(
    app, make_subscriber, run_jobs, inbox
):
    for name in ("ann", "bea", "cid"):
        make_subscriber(f"{name}@example.com")
    reason = _pause("bea@example.com", weeks=3)
    issue = create_issue("While you were away", "Hello")
    send_issue(issue.id)
    assert run_jobs() >= 1
    inbox.wait_for(2)
    assert sorted(rcpt for _f, (rcpt,) in inbox.envelopes) == ["ann@example.com", "cid@example.com"]
    found = issue_status(issue.id)
    assert {k: found[k] for k in ("status", "sent", "skipped", "audience")} == {
        "status": "sent",
        "sent": 2,
        "skipped": 1,
        "audience": 3,
    }
    assert deliveries(issue.id)["bea@example.com"] == ("skipped", 0, reason)


def test_a_pause_taken_after_queueing_is_seen_when_the_copy_is_claimed(
    app, make_subscriber, run_jobs, inbox
):
    make_subscriber("dan@example.com")
    make_subscriber("eli@example.com")
    issue = create_issue("Queued before the pause", "Hello")
    send_issue(issue.id)
    reason = _pause("eli@example.com")
    run_jobs()
    inbox.wait_for(1)
    assert [rcpt for _f, (rcpt,) in inbox.envelopes] == ["dan@example.com"]
    assert deliveries(issue.id)["eli@example.com"] == ("skipped", 0, reason)
    assert issue_status(issue.id)["skipped"] == 1


def test_when_the_pause_is_over_the_reader_gets_the_tips_again(
    app, make_subscriber, run_jobs, inbox
):
    sub = make_subscriber("fay@example.com")
    sub.paused_until = utcnow() - timedelta(minutes=1)  # it ended a minute ago, by itself
    db.session.commit()
    issue = send_and_wait("Welcome back", "Hello", run_jobs, inbox)
    assert deliveries(issue.id)["fay@example.com"][0] == "sent"


def test_resuming_early_brings_the_next_issue(app, make_subscriber, run_jobs, inbox):
    sub = make_subscriber("gil@example.com")
    _pause("gil@example.com", weeks=12)
    manage.resume(db.session(), db.session.get(Subscriber, sub.id))
    db.session.commit()
    issue = send_and_wait("Back early", "Hello", run_jobs, inbox)
    assert deliveries(issue.id)["gil@example.com"][0] == "sent"


def test_the_snapshot_stays_one_insert_select_with_pauses(app):
    emails = [f"bulk{i}@example.com" for i in range(300)]
    db.session.execute(
        sa.insert(Subscriber), [{"email": e, "name": "", "status": "confirmed"} for e in emails]
    )
    now = utcnow()
    db.session.execute(
        sa.update(Subscriber)
        .where(Subscriber.id % 3 == 0)
        .values(paused_until=now + timedelta(weeks=1))
    )
    db.session.commit()
    issue = create_issue("Bulk", "Hello")
    statements: list[str] = []

    def seen(conn, cursor, statement, *args):  # type: ignore[no-untyped-def]
        statements.append(statement)

    sa.event.listen(db.engine, "before_cursor_execute", seen)
    try:
        result = plan.queue_issue(db.session(), issue.id, now, 100)
        db.session.commit()
    finally:
        sa.event.remove(db.engine, "before_cursor_execute", seen)
    inserts = [s for s in statements if s.lstrip().upper().startswith("INSERT INTO DELIVERY")]
    assert len(inserts) == 1 and "SELECT" in inserts[0].upper()
    assert result.audience == 300
    counts = dict(
        db.session.execute(
            sa.select(Delivery.status, sa.func.count()).group_by(Delivery.status)
        ).all()
    )
    assert counts == {DeliveryStatus.QUEUED: 200, DeliveryStatus.SKIPPED: 100}
    notes = set(
        db.session.scalars(
            sa.select(Delivery.last_error).where(Delivery.status == DeliveryStatus.SKIPPED)
        )
    )
    assert notes == {f"paused until {(now + timedelta(weeks=1)).date().isoformat()}"}
