"""Outgoing webhooks: signed POSTs to a real local HTTP server, retried until it answers."""

from __future__ import annotations

import hashlib
import hmac
import json
import threading
from collections.abc import Iterator
from datetime import timedelta
from http.server import BaseHTTPRequestHandler

import pytest
import sqlalchemy as sa
from rq.registry import ScheduledJobRegistry

from newsletter.bounces.intake import Notice, apply_notice
from newsletter.delivery import lifecycle
from newsletter.delivery.message import MessageIds
from newsletter.extensions import db, settings
from newsletter.models import (
    BounceKind,
    Delivery,
    DeliveryStatus,
    Issue,
    IssueStatus,
    Subscriber,
    SubscriberStatus,
    WebhookDelivery,
    utcnow,
)
from newsletter.subscribers.signup import subscribe
from newsletter.subscribers.state import bounce, confirm, unsubscribe
from newsletter.tasks.queues import WEBHOOK_QUEUE, get_queue
from newsletter.tasks.tick import reconcile
from newsletter.tasks.webhook_posts import reconcile as reconcile_webhooks
from newsletter.webhooks.events import register_webhook
from newsletter.webhooks.post import backoff
from tests.helpers import csrf_from, override_settings
from tests.helpers.editors import editor_client
from tests.helpers.receivers import QuietHTTPServer


class Receiver:
    """An HTTP server that records each POST and fails the first ``fail_first`` of them."""

    def __init__(self, fail_first: int = 0) -> None:
        self.fail_first = fail_first
        self.requests: list[tuple[dict[str, str], bytes]] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - the stdlib's name
                body = self.rfile.read(int(self.headers["Content-Length"]))
                receiver.requests.append((dict(self.headers), body))
                failing = len(receiver.requests) <= receiver.fail_first
                self.send_response(503 if failing else 204)
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.server = QuietHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver()
    yield r
    r.close()


def verify(secret: str, headers: dict[str, str], body: bytes) -> bool:
    expected = "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    return hmac.compare_digest(expected, headers["X-Newsletter-Signature"])


def test_subscriber_events_arrive_signed(app, receiver, run_jobs):
    hook = register_webhook(
        db.session, receiver.url, ["subscriber.confirmed", "subscriber.unsubscribed"]
    )
    db.session.commit()
    result = subscribe(db.session, "ann@example.com", "Ann")
    db.session.commit()
    assert confirm(db.session, result.subscriber_id, 1) == "confirmed"
    db.session.commit()
    unsubscribe(db.session, result.subscriber_id)
    db.session.commit()
    run_jobs()

    assert len(receiver.requests) == 2
    events = []
    for headers, body in receiver.requests:
        assert verify(hook.secret, headers, body)
        assert not verify("another secret", headers, body)
        assert headers["Content-Type"] == "application/json"
        assert headers["X-Newsletter-Timestamp"].isdigit()
        payload = json.loads(body)
        assert payload["data"]["email"] == "ann@example.com"
        events.append(payload["event"])
    assert events == ["subscriber.confirmed", "subscriber.unsubscribed"]
    rows = db.session.scalars(sa.select(WebhookDelivery)).all()
    assert [(r.status, r.attempts, r.response_code) for r in rows] == [("ok", 1, 204)] * 2


def test_only_chosen_events_are_sent_and_a_rollback_sends_nothing(
    app, receiver, run_jobs, make_subscriber
):
    register_webhook(db.session, receiver.url, ["subscriber.bounced"])
    db.session.commit()
    sub = make_subscriber("bob@example.com", "confirmed")
    unsubscribe(db.session, sub.id)
    db.session.commit()
    other = make_subscriber("cy@example.com", "confirmed")
    bounce(db.session, other.id, "550 no such user")
    db.session.rollback()
    run_jobs()
    assert receiver.requests == []
    bounce(db.session, other.id, "550 no such user")
    db.session.commit()
    run_jobs()
    assert [json.loads(b)["event"] for _h, b in receiver.requests] == ["subscriber.bounced"]


def test_a_receiver_that_fails_twice_gets_the_event_on_the_third_try(
    app, run_jobs, make_subscriber
):
    override_settings(app, webhook_retry_base=0)  # retry at once instead of via the scheduler
    flaky = Receiver(fail_first=2)
    try:
        hook = register_webhook(db.session, flaky.url, ["subscriber.unsubscribed"])
        db.session.commit()
        sub = make_subscriber("dee@example.com", "confirmed")
        unsubscribe(db.session, sub.id)
        db.session.commit()
        run_jobs()
        assert len(flaky.requests) == 3
        bodies = {body for _h, body in flaky.requests}
        assert len(bodies) == 1  # the same event each time
        assert all(verify(hook.secret, h, b) for h, b in flaky.requests)
        row = db.session.scalar(sa.select(WebhookDelivery))
        assert (row.status, row.attempts, row.response_code) == ("ok", 3, 204)
    finally:
        flaky.close()


def test_retries_wait_longer_each_time_and_are_scheduled(app, run_jobs, make_subscriber):
    assert [backoff(n, 30) for n in (1, 2, 3)] == [30, 120, 480]
    dead = Receiver(fail_first=99)
    try:
        register_webhook(db.session, dead.url, ["subscriber.unsubscribed"])
        db.session.commit()
        sub = make_subscriber("eve@example.com", "confirmed")
        unsubscribe(db.session, sub.id)
        db.session.commit()
        run_jobs()
        assert len(dead.requests) == 1  # the retry waits in the scheduler, not in the queue
        assert len(ScheduledJobRegistry(queue=get_queue(WEBHOOK_QUEUE))) == 1
        row = db.session.scalar(sa.select(WebhookDelivery))
        assert (row.status, row.attempts, row.last_error) == ("pending", 1, "HTTP 503")
    finally:
        dead.close()


def test_issue_sent_is_emitted_when_a_send_finishes(app, receiver, run_jobs):
    register_webhook(db.session, receiver.url, ["issue.sent"])
    issue = Issue(
        slug="tip-9", subject="Tip 9: less +F", body_md="Follow a file.", status=IssueStatus.SENDING
    )
    db.session.add(issue)
    db.session.commit()
    # The engine's own "nothing left to send" step marks it sent; the event rides along.
    assert lifecycle.finish_if_done(db.session, issue.id, utcnow())
    db.session.commit()
    run_jobs()
    payloads = [json.loads(b) for _h, b in receiver.requests]
    assert [p["event"] for p in payloads] == ["issue.sent"]
    assert payloads[0]["data"]["subject"] == "Tip 9: less +F"
    assert payloads[0]["data"]["sent_at"]


def test_editor_registers_sees_the_log_and_deletes(app, receiver, run_jobs, make_subscriber):
    client = editor_client(app)
    page = client.get("/editor/webhooks").text
    bad = client.post(
        "/editor/webhooks",
        data={"csrf_token": csrf_from(page), "url": "ftp://x", "events": "issue.sent"},
    )
    assert bad.status_code == 400 and "http://" in bad.text
    added = client.post(
        "/editor/webhooks",
        data={
            "csrf_token": csrf_from(page),
            "url": receiver.url,
            "events": ["subscriber.unsubscribed"],
        },
    )
    assert added.status_code == 200 and receiver.url in added.text
    sub = make_subscriber("gil@example.com", "confirmed")
    unsubscribe(db.session, sub.id)
    db.session.commit()
    run_jobs()
    log = client.get("/editor/webhooks").text
    table = log[log.index('id="webhook-log"') :]
    assert "subscriber.unsubscribed" in table and ">ok<" in table and ">204<" in table
    hook_id = db.session.scalar(sa.text("select id from webhook"))
    client.post(f"/editor/webhooks/{hook_id}/delete", data={"csrf_token": csrf_from(log)})
    assert db.session.scalar(sa.select(sa.func.count()).select_from(WebhookDelivery)) == 0
    assert sub.status is SubscriberStatus.UNSUBSCRIBED


def test_a_delivery_whose_job_redis_lost_is_sent_after_reconcile(
    app, receiver, run_jobs, redis_client
):
    register_webhook(db.session, receiver.url, ["subscriber.confirmed"])
    db.session.commit()
    result = subscribe(db.session, "lost@example.com", "Lost")
    db.session.commit()
    confirm(db.session, result.subscriber_id, 1)
    db.session.commit()
    redis_client.flushall()  # Redis restarted empty: the delivery job is gone
    assert run_jobs() == 0 and receiver.requests == []
    row = db.session.scalar(sa.select(WebhookDelivery))
    assert row.status == "pending"

    # A minute on, the reconciler sees a pending row with no job and enqueues one; twice
    # changes nothing, since the job it made is there now.
    row.created_at -= timedelta(minutes=2)
    db.session.commit()
    reconcile()
    reconcile()
    run_jobs()
    assert len(receiver.requests) == 1
    assert json.loads(receiver.requests[0][1])["data"]["email"] == "lost@example.com"
    db.session.expire_all()
    assert db.session.get(WebhookDelivery, row.id).status == "ok"
    reconcile()
    assert run_jobs() == 0


def test_a_delivery_queued_under_the_jobs_old_module_name_still_goes_out(
    app, receiver, run_jobs, redis_client
):
    register_webhook(db.session, receiver.url, ["subscriber.confirmed"])
    db.session.commit()
    result = subscribe(db.session, "old@example.com", "Old")
    db.session.commit()
    confirm(db.session, result.subscriber_id, 1)
    db.session.commit()
    redis_client.flushall()
    row = db.session.scalar(sa.select(WebhookDelivery))
    # As a worker from before the rename left it in Redis: the job named by its dotted path.
    get_queue(WEBHOOK_QUEUE).enqueue("newsletter.tasks.webhooks.deliver", row.id)
    run_jobs()
    assert len(receiver.requests) == 1
    db.session.expire_all()
    assert db.session.get(WebhookDelivery, row.id).status == "ok"


def test_a_waiting_retry_is_not_sent_early_by_the_reconciler(app, run_jobs, make_subscriber):
    down = Receiver(fail_first=10)
    try:
        register_webhook(db.session, down.url, ["subscriber.bounced"])
        db.session.commit()
        sub = make_subscriber("b@example.com", "confirmed")
        bounce(db.session, sub.id)
        db.session.commit()
        run_jobs()  # first try fails; the retry waits in RQ's schedule
        assert len(down.requests) == 1
        row = db.session.scalar(sa.select(WebhookDelivery))
        row.created_at -= timedelta(hours=1)
        db.session.commit()
        reconcile()
        assert run_jobs() == 0 and len(down.requests) == 1
    finally:
        down.close()


def test_a_worker_starting_up_re_enqueues_lost_deliveries(app):
    assert reconcile_webhooks in app.extensions["worker_start_hooks"]


def test_a_spam_complaint_sends_subscriber_complained(app, receiver, run_jobs, make_subscriber):
    register_webhook(db.session, receiver.url, ["subscriber.complained", "subscriber.unsubscribed"])
    sub = make_subscriber("moaner@example.com", status="confirmed")
    issue = Issue(slug="tip-10", subject="Tip 10", body_md="Body.", status=IssueStatus.SENT)
    db.session.add(issue)
    db.session.flush()
    db.session.add(Delivery(issue_id=issue.id, subscriber_id=sub.id, status=DeliveryStatus.SENT))
    db.session.commit()
    domain = settings(app).mail_from.rpartition("@")[2].rstrip(">")
    mid = MessageIds(issue.id, settings(app).secret_key.encode(), domain)(sub.id)
    notice = Notice(kind=BounceKind.COMPLAINT, source="arf", message_id=mid)
    assert apply_notice(db.session(), notice, settings(app)).startswith("recorded complaint")
    db.session.commit()
    run_jobs()
    payloads = [json.loads(b) for _h, b in receiver.requests]
    assert [p["event"] for p in payloads] == ["subscriber.complained", "subscriber.unsubscribed"]
    assert payloads[0]["data"]["email"] == "moaner@example.com"
    assert payloads[0]["data"]["reason"] == "complaint"
    assert db.session.get(Subscriber, sub.id).status is SubscriberStatus.UNSUBSCRIBED


def test_many_events_in_one_transaction_read_the_webhooks_once(app):
    from newsletter.webhooks.events import emit, register_webhook

    register_webhook(db.session, "https://hooks.example/a", ["subscriber.unsubscribed"])
    db.session.commit()
    reads: list[str] = []

    def count(conn, cursor, statement, *args):
        if "FROM webhook " in statement or statement.rstrip().endswith("FROM webhook"):
            reads.append(statement)

    engine = db.engine
    sa.event.listen(engine, "before_cursor_execute", count)
    try:
        for n in range(50):
            payload = {"subscriber_id": n, "email": f"r{n}@example.com", "name": "", "status": "x"}
            assert len(emit(db.session, "subscriber.unsubscribed", payload)) == 1
        db.session.rollback()
        # A new transaction reads them afresh: a webhook added meanwhile is seen.
        register_webhook(db.session, "https://hooks.example/b", ["subscriber.unsubscribed"])
        assert len(emit(db.session, "subscriber.unsubscribed", payload)) == 2
        db.session.rollback()
    finally:
        sa.event.remove(engine, "before_cursor_execute", count)
    assert len(reads) == 2, reads
