"""The delivery engine with a real database, Redis, RQ worker and SMTP server."""

from __future__ import annotations

import threading
import time
from datetime import timedelta

import sqlalchemy as sa
from redis import Redis
from rq.job import Job
from sqlalchemy.orm import Session

from newsletter.delivery import batch, claims, message, plan
from newsletter.errors import Conflict
from newsletter.extensions import db, settings
from newsletter.issues.actions import (
    cancel_issue,
    create_issue,
    issue_status,
    pause_issue,
    update_issue,
)
from newsletter.models import Delivery, Issue, IssueStatus, Subscriber, SubscriberStatus, utcnow
from newsletter.services import mailer
from newsletter.subscribers.links import tokens_for
from newsletter.subscribers.state import unsubscribe
from newsletter.tasks.dispatch import resume_issue, send_issue
from newsletter.tasks.jobs import bounce_address
from newsletter.tasks.throttle import SharedStreak
from newsletter.tasks.tick import reconcile
from tests.helpers import override_settings


def _bulk_subscribers(n: int, status: str = "confirmed", start: int = 0) -> None:
    db.session.execute(
        sa.insert(Subscriber),
        [
            {"email": f"bulk{i}@example.com", "name": "", "status": SubscriberStatus(status)}
            for i in range(start, start + n)
        ],
    )
    db.session.commit()


def _counts(issue_id: int) -> dict[str, int]:
    found = issue_status(issue_id)
    return {k: found[k] for k in ("queued", "sending", "sent", "failed", "skipped")}


def test_queueing_snapshots_only_confirmed_subscribers_in_batches(app, make_subscriber):
    override_settings(app, batch_size=2)
    for i in range(5):
        make_subscriber(f"c{i}@example.com")
    make_subscriber("p@example.com", status="pending")
    make_subscriber("u@example.com", status="unsubscribed")
    issue = create_issue("Tip one", "Hello")
    message = send_issue(issue.id)
    assert "5 subscribers" in message and "3 batches" in message
    batches = db.session.scalars(sa.select(Delivery.batch).order_by(Delivery.subscriber_id)).all()
    assert batches == [0, 0, 1, 1, 2]
    db.session.refresh(issue)
    assert (issue.status, issue.audience, issue.batches) == (IssueStatus.SENDING, 5, 3)
    # A subscriber confirmed after queueing is not in this send.
    make_subscriber("late@example.com")
    assert "already sending" in send_issue(issue.id)
    assert db.session.scalar(sa.select(sa.func.count()).select_from(Delivery)) == 5


def test_a_send_reaches_every_confirmed_subscriber_once_and_ends_sent(
    app, make_subscriber, run_jobs, inbox
):
    override_settings(app, batch_size=3)
    people = [make_subscriber(f"r{i}@example.com") for i in range(7)]
    issue = create_issue("Weekly tip", "Use **git bisect**.")
    send_issue(issue.id)
    run_jobs()
    inbox.wait_for(7)
    assert sorted(e[1][0] for e in inbox.envelopes) == sorted(p.email for p in people)
    found = issue_status(issue.id)
    assert found["status"] == "sent"
    assert (found["sent"], found["failed"], found["skipped"], found["queued"]) == (7, 0, 0, 0)
    assert found["audience"] == found["sent"] + found["failed"] + found["skipped"]
    db.session.refresh(issue)
    assert issue.sent_at is not None
    # Sending again is harmless: nothing more leaves.
    assert "already sent" in send_issue(issue.id)
    run_jobs()
    assert len(inbox.messages) == 7


def test_twenty_simultaneous_sends_start_one_send(app, make_subscriber, run_jobs, inbox):
    for i in range(4):
        make_subscriber(f"t{i}@example.com")
    issue_id = create_issue("Once", "Only once").id
    db.session.commit()  # on SQLite every transaction holds the write lock: end ours
    answers: list[str] = []
    barrier = threading.Barrier(20)

    def click() -> None:
        with app.app_context():
            barrier.wait()
            try:
                answers.append(send_issue(issue_id))
            except Exception as exc:  # a lost race must still answer, never crash
                answers.append(f"error: {exc!r}")
            finally:
                db.session.remove()

    threads = [threading.Thread(target=click) for _ in range(20)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sum("is queued for" in a for a in answers) == 1, answers
    assert sum("already sending" in a for a in answers) == 19, answers
    assert db.session.scalar(sa.select(sa.func.count()).select_from(Delivery)) == 4
    run_jobs()
    inbox.wait_for(4)
    time.sleep(0.2)
    assert len(inbox.messages) == 4


def test_whoever_unsubscribes_before_the_claim_is_skipped(app, make_subscriber, run_jobs, inbox):
    stay = make_subscriber("stay@example.com")
    leave = make_subscriber("leave@example.com")
    issue = create_issue("Skip", "Body")
    send_issue(issue.id)
    db.session.get(Subscriber, leave.id).status = SubscriberStatus.UNSUBSCRIBED
    db.session.commit()
    run_jobs()
    inbox.wait_for(1)
    assert [e[1] for e in inbox.envelopes] == [[stay.email]]
    assert _counts(issue.id) == {"queued": 0, "sending": 0, "sent": 1, "failed": 0, "skipped": 1}
    assert issue_status(issue.id)["status"] == "sent"


def test_pause_holds_everything_and_resume_sends_the_rest(app, make_subscriber, run_jobs, inbox):
    override_settings(app, batch_size=2)
    for i in range(5):
        make_subscriber(f"p{i}@example.com")
    issue = create_issue("Pause me", "Body")
    send_issue(issue.id)
    assert "paused" in pause_issue(issue.id)
    run_jobs()
    assert inbox.messages == []
    assert _counts(issue.id)["queued"] == 5
    with_error = None
    try:
        pause_issue(issue.id)
    except Conflict as exc:  # pragma: no cover - it says "already paused" instead
        with_error = exc
    assert with_error is None
    resume_issue(issue.id)
    run_jobs()
    inbox.wait_for(5)
    assert issue_status(issue.id)["status"] == "sent"


def test_cancel_skips_what_was_not_sent(app, make_subscriber, run_jobs, inbox):
    for i in range(3):
        make_subscriber(f"x{i}@example.com")
    issue = create_issue("Cancel me", "Body")
    send_issue(issue.id)
    assert "cancelled" in cancel_issue(issue.id)
    run_jobs()
    assert inbox.messages == []
    found = issue_status(issue.id)
    assert found["status"] == "cancelled" and found["skipped"] == 3
    try:
        send_issue(issue.id)
    except Conflict as exc:
        assert "cancelled" in exc.message
    else:  # pragma: no cover
        raise AssertionError("a cancelled issue was sent")


def test_an_issue_can_be_edited_only_until_queued(app, make_subscriber):
    make_subscriber()
    issue = create_issue("First title", "Body")
    issue = update_issue(issue.id, "Second title", "New body")
    assert issue.slug == "second-title"
    send_issue(issue.id)
    try:
        update_issue(issue.id, "Third", "x")
    except Conflict as exc:
        assert "can no longer be edited" in exc.message
    else:  # pragma: no cover
        raise AssertionError("edited a queued issue")
    assert db.session.get(Issue, issue.id).subject == "Second title"


def test_an_expired_lease_is_taken_back_and_the_batch_re_enqueued(
    app, make_subscriber, run_jobs, inbox
):
    sub = make_subscriber("lost@example.com")
    issue = create_issue("Lease", "Body")
    send_issue(issue.id)
    # A worker claims the delivery and dies before sending: the row sits in `sending`.
    rows = claims.claim(db.session, issue.id, 0, "dead-worker", utcnow(), 1)
    db.session.commit()
    assert [r.subscriber_id for r in rows] == [sub.id]

    Redis.from_url(settings(app).redis_url).flushdb() if settings(app).redis_url else None
    run_jobs()
    assert inbox.messages == []  # the lease still holds
    db.session.execute(sa.update(Delivery).values(lease_until=utcnow() - timedelta(seconds=1)))
    db.session.commit()
    assert "reclaimed 1, enqueued 1" in reconcile()
    run_jobs()
    (msg,) = inbox.wait_for(1)
    assert msg["To"] == "lost@example.com"
    found = issue_status(issue.id)
    assert found["status"] == "sent" and found["possible_duplicates"] == 1


def _statements_to_queue(audience: int, already: int) -> int:
    """Queue an issue to ``audience`` readers (``already`` are on the list); count the SQL."""
    _bulk_subscribers(audience - already, start=already)
    issue = create_issue(f"Send to {audience}", "Body")
    statements: list[str] = []

    def count(_conn: object, _cursor: object, statement: str, *_args: object) -> None:
        statements.append(statement)

    sa.event.listen(db.engine, "before_cursor_execute", count)
    try:
        result = plan.queue_issue(db.session, issue.id, utcnow(), 500)
        db.session.commit()
    finally:
        sa.event.remove(db.engine, "before_cursor_execute", count)
    assert result.audience == audience and result.batches == -(-audience // 500)
    queued = sa.select(sa.func.count()).select_from(Delivery).where(Delivery.issue_id == issue.id)
    assert db.session.scalar(queued) == audience
    return len(statements)


def test_queueing_a_send_takes_the_same_few_statements_for_any_audience(app):
    # The snapshot is one INSERT … SELECT, never a statement (or a Python object) per reader.
    small = _statements_to_queue(1_000, already=0)
    large = _statements_to_queue(100_000, already=1_000)
    assert 0 < small == large <= 10, (small, large)
    assert db.session.scalar(sa.select(sa.func.max(Delivery.batch))) == 199


def test_whoever_unsubscribes_after_the_claim_but_before_their_turn_is_skipped(
    app, make_subscriber
):
    """A chunk is claimed at once; an unsubscribe in the middle of it is still honoured."""
    subs = [make_subscriber(f"r{i}@example.com") for i in range(5)]
    # Plain values: touching an expired ORM object mid-send would open a transaction in the
    # test's own session and hold SQLite's write lock against the unsubscribe below.
    leaver_id, emails = subs[3].id, [s.email for s in subs]
    issue = create_issue("Mid-chunk", "Body")
    send_issue(issue.id)
    sent_to: list[str] = []

    class LeavesMidway:
        def send(self, to: str, data: bytes, sender: str | None = None, before_end=None) -> None:
            if before_end is not None:
                before_end()
            sent_to.append(to)
            if len(sent_to) == 2:  # the fourth reader unsubscribes while the second copy goes
                with Session(db.engine) as other:
                    unsubscribe(other, leaver_id)
                    other.commit()

    context = batch.BatchContext(
        worker="test",
        message=lambda: message.issue_message(mailer(), issue, b"key"),
        token_for=tokens_for(settings(app)).unsubscribe_token_maker(),
        manage_token_for=tokens_for(settings(app)).manage_token_maker(),
        smtp=LeavesMidway(),
        settings=batch.SendSettings(recheck_seconds=0.0),
        bounce=bounce_address,
    )
    report = batch.run_batch(db.session, issue.id, 0, context)
    assert sent_to == [e for i, e in enumerate(emails) if i != 3]
    assert report.sent == 4 and report.skipped == 1 and report.finished
    assert _counts(issue.id) == {"queued": 0, "sending": 0, "sent": 4, "failed": 0, "skipped": 1}


def test_the_failure_streak_is_one_count_across_workers(redis_client):
    a, b = SharedStreak(redis_client), SharedStreak(redis_client)
    assert [a.failed(1), a.failed(1), b.failed(1)] == [1, 2, 3]
    assert a.failed(2) == 1  # per issue
    b.succeeded(1)  # a copy got through somewhere: the streak is over
    assert a.failed(1) == 1
    a.succeeded(1)
    a.succeeded(1)  # without a failure in between, no Redis write per message
    assert b.failed(1) == 1 and b.failed(1) == 2
    a.clear(1)
    assert a.failed(1) == 1


def test_resume_copes_with_a_job_that_expires_while_it_looks(
    app, make_subscriber, run_jobs, inbox, redis_client, monkeypatch
):
    """A finished job's hash can expire (or another dispatcher delete it) between the fetch
    and the delete; resuming must neither fail nor leave the batch without a job."""
    for i in range(3):
        make_subscriber(f"x{i}@example.com")
    issue = create_issue("Expiring jobs", "Body")
    send_issue(issue.id)
    pause_issue(issue.id)
    run_jobs()  # the batch job runs, finds the send paused, and finishes
    fetch = Job.fetch

    def fetch_then_expire(job_id, *args, **kwargs):
        job = fetch(job_id, *args, **kwargs)
        redis_client.delete(job.key)  # gone the instant after it was read
        return job

    monkeypatch.setattr(Job, "fetch", fetch_then_expire)
    resume_issue(issue.id)
    monkeypatch.undo()
    run_jobs()
    assert len(inbox.wait_for(3)) == 3
    assert issue_status(issue.id)["status"] == "sent"
