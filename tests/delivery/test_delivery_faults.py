"""SMTP faults on demand: retries with backoff, bounces, drops, and a server that never answers."""

from __future__ import annotations

import time

import sqlalchemy as sa

from newsletter.extensions import db
from newsletter.issues.actions import create_issue, issue_status
from newsletter.models import Bounce, BounceKind, Issue, Subscriber, SubscriberStatus, utcnow
from newsletter.tasks.dispatch import send_issue
from newsletter.tasks.tick import reconcile
from tests.delivery.conftest import FAST_RETRIES
from tests.helpers import free_port, override_settings, truncate_all
from tests.helpers.sending import deliveries, queue_issue
from tests.helpers.smtp import SilentServer


def test_451_twice_is_retried_then_accepted(fault_app, add_reader, run_jobs, sink):
    sink.script("f1@example.com", "451", "451")
    issue_id, _ = queue_issue(3, add_reader)
    run_jobs()
    sink.wait_for(3)
    assert len(sink.to("f1@example.com")) == 1
    assert sink.attempts["f1@example.com"] == 3
    assert deliveries(issue_id)["f1@example.com"][:2] == ("sent", 3)
    assert issue_status(issue_id)["status"] == "sent"


def test_550_fails_for_good_bounces_and_is_left_out_of_the_nextqueue_issue(
    fault_app, add_reader, run_jobs, sink
):
    sink.script("f0@example.com", "550")
    issue_id, people = queue_issue(2, add_reader)
    run_jobs()
    sink.wait_for(1)
    status, attempts, error = deliveries(issue_id)["f0@example.com"]
    assert (status, attempts) == ("failed", 1) and error.startswith("550")
    assert db.session.get(Subscriber, people[0].id).status is SubscriberStatus.BOUNCED
    found = issue_status(issue_id)
    assert (found["status"], found["sent"], found["failed"]) == ("sent", 1, 1)
    second = create_issue("Next week", "Body")
    assert "1 subscriber " in send_issue(second.id)
    run_jobs()
    sink.wait_for(2)
    assert sink.attempts["f0@example.com"] == 1


def test_552_mailbox_full_is_a_soft_bounce_not_a_bounced_reader(
    fault_app, add_reader, run_jobs, sink
):
    sink.script("f0@example.com", "552")
    issue_id, people = queue_issue(1, add_reader)
    run_jobs()
    assert deliveries(issue_id)["f0@example.com"][:2] == ("failed", 1)
    assert db.session.get(Subscriber, people[0].id).status is SubscriberStatus.CONFIRMED
    kinds = db.session.scalars(sa.select(Bounce.kind).where(Bounce.issue_id == issue_id)).all()
    assert kinds == [BounceKind.SOFT]


def test_421_at_connect_for_a_while_is_waited_out(fault_app, add_reader, run_jobs, sink):
    sink.ehlo_failures = 4  # EHLO and the HELO fallback, twice
    issue_id, _ = queue_issue(2, add_reader)
    run_jobs()
    sink.wait_for(2)
    assert issue_status(issue_id)["status"] == "sent"
    assert all(len(sink.to(f"f{i}@example.com")) == 1 for i in range(2))


def test_a_connection_dropped_during_rcpt_is_retried(fault_app, add_reader, run_jobs, sink):
    sink.script("f0@example.com", "drop-rcpt")
    issue_id, _ = queue_issue(3, add_reader)
    run_jobs()
    sink.wait_for(3)
    assert len(sink.to("f0@example.com")) == 1
    assert issue_status(issue_id)["sent"] == 3


def test_a_connection_dropped_after_data_resends_the_same_message(
    fault_app, add_reader, run_jobs, sink
):
    sink.script("f0@example.com", "drop-data")
    issue_id, _ = queue_issue(2, add_reader)
    run_jobs()
    sink.wait_for(3)
    copies = sink.to("f0@example.com")
    # The server had it when the line went dead; the resend is recognisably the same message.
    assert len(copies) == 2 and copies[0].message_id == copies[1].message_id
    assert issue_status(issue_id)["sent"] == 2


def _until_sent(issue_id, run_jobs, timeout=30.0):
    """Run jobs, and the reconciler when a wait for the relay falls due, until the send ends."""
    deadline = time.monotonic() + timeout
    found = issue_status(issue_id)
    while found["status"] == "sending":
        assert time.monotonic() < deadline, found
        time.sleep(found["relay_retry_in"] or 0)  # the relay's next try: a time, not an event
        reconcile()
        run_jobs()
        db.session.remove()
        found = issue_status(issue_id)
    return found


def test_a_relay_saying_not_now_to_every_reader_is_waited_out_not_paused(
    make_app, add_reader, run_jobs, sink
):
    app = make_app(SMTP_PORT=str(sink.port), SEND_PAUSE_AFTER="5", **FAST_RETRIES)
    with app.app_context():
        truncate_all()
        sink.reject_all = "451 relay not permitted right now"
        issue_id, _ = queue_issue(12, add_reader)
        run_jobs()  # the job waits a little, then leaves the next try to the reconciler
        found = issue_status(issue_id)
        assert found["status"] == "sending" and found["relay_waiting"]
        assert "451 relay not permitted" in found["relay_error"] and found["pause_reason"] == ""
        assert found["queued"] == 12 and found["failed"] == 0
        # No reader paid for it: a few counted one try before the relay was suspected.
        assert max(a for _s, a, _e in deliveries(issue_id).values()) <= 1
        sink.reject_all = None
        found = _until_sent(issue_id, run_jobs)
        assert (found["sent"], found["failed"], found["relay_waiting"]) == (12, 0, False)
        assert all(len(sink.to(f"f{i}@example.com")) == 1 for i in range(12))


def test_a_server_that_never_answers_times_out_and_the_worker_carries_on(
    make_app, add_reader, run_jobs, sink
):
    silent = SilentServer(free_port())
    try:
        # A long backoff: after the timeout the job leaves the retry to the reconciler.
        settings = {**FAST_RETRIES, "SEND_RETRY_BASE": "30"}
        app = make_app(SMTP_PORT=str(silent.port), **settings)
        with app.app_context():
            truncate_all()
            issue_id, _ = queue_issue(1, add_reader)
            started = time.monotonic()
            run_jobs()  # returns: the client gave up after SMTP_TIMEOUT, the send waits
            assert time.monotonic() - started < 20
            status, attempts, _error = deliveries(issue_id)["f0@example.com"]
            assert (status, attempts) == ("queued", 0)  # the relay's silence is nobody's try
            found = issue_status(issue_id)
            assert found["relay_waiting"] and "timed out" in found["relay_error"]
            # The relay comes back and its next try falls due: the reconciler hands it out.
            override_settings(app, smtp_port=sink.port)
            db.session.execute(sa.update(Issue).values(relay_retry_at=utcnow()))
            db.session.commit()
            assert "enqueued 1" in reconcile()
            run_jobs()
            sink.wait_for(1)
            assert issue_status(issue_id)["status"] == "sent"
    finally:
        silent.close()
