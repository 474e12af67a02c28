"""SMTP faults on demand: retries with backoff, bounces, drops, and a server that never answers."""

from __future__ import annotations

import time

import sqlalchemy as sa

from newsletter.extensions import db
from newsletter.issues.actions import create_issue, issue_status
from newsletter.models import Bounce, BounceKind, Delivery, Subscriber, SubscriberStatus
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


def test_a_relay_refusing_everything_pauses_the_send_with_a_reason(
    make_app, add_reader, run_jobs, sink
):
    app = make_app(SMTP_PORT=str(sink.port), SEND_PAUSE_AFTER="5", **FAST_RETRIES)
    with app.app_context():
        truncate_all()
        sink.reject_all = "451 relay not permitted right now"
        issue_id, _ = queue_issue(12, add_reader)
        run_jobs()
        found = issue_status(issue_id)
        assert found["status"] == "paused"
        assert "5 messages all failed" in found["pause_reason"]
        assert "451" in found["pause_reason"]
        assert found["queued"] == 12 and found["failed"] == 0


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
            run_jobs()  # returns: the client gave up after SMTP_TIMEOUT
            assert time.monotonic() - started < 20
            status, attempts, error = deliveries(issue_id)["f0@example.com"]
            assert (status, attempts) == ("queued", 1) and "timed out" in error
            # The relay comes back and the retry falls due: the reconciler hands the batch out.
            override_settings(app, smtp_port=sink.port)
            db.session.execute(sa.update(Delivery).values(next_attempt_at=None))
            db.session.commit()
            assert "enqueued 1" in reconcile()
            run_jobs()
            sink.wait_for(1)
            assert issue_status(issue_id)["status"] == "sent"
    finally:
        silent.close()
