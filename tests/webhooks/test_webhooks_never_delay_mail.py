"""Webhook posts never delay mail: a real worker process, slow receivers, a real SMTP sink.

Each worker process posts webhooks on a thread of its own, beside the worker that sends mail;
these tests start ``python worker.py`` as an operator would and watch what users would see:
the mail in the sink and the delivery log's rows.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from newsletter.extensions import db, settings
from newsletter.models import WebhookDelivery
from newsletter.subscribers.state import unsubscribe
from newsletter.webhooks.events import register_webhook
from newsletter.webhooks.post import DEADLINE
from tests.helpers import free_port, truncate_all
from tests.helpers.readers import subscribe
from tests.helpers.receivers import Dripper
from tests.helpers.redis_server import RedisServer
from tests.helpers.smtp import start_sink
from tests.webhooks.test_webhooks import Receiver

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def worker_world(
    make_app: Any, tmp_path: Path, _migrated: str, redis_url: str
) -> Iterator[Callable[..., Any]]:
    """Return ``start(**settings) -> (app, sink)``: an app, an SMTP sink and a worker process."""
    controller, sink = start_sink(free_port())
    procs: list[subprocess.Popen[bytes]] = []
    logs: list[Path] = []

    def start(**extra: str) -> tuple[Any, Any]:
        values = {"SMTP_PORT": str(controller.port), **extra}
        app = make_app(**values)
        env = {
            **os.environ,
            "NEWSLETTER_ENV": "testing",
            "INSTANCE_PATH": str(tmp_path / "worker-instance"),
            "DATABASE_URL": _migrated,
            "REDIS_URL": redis_url,
            "SMTP_HOST": "127.0.0.1",
            "SMTP_TIMEOUT": "5",
            "SECRET_KEY": settings(app).secret_key,
            "MAIL_FROM": settings(app).mail_from,
            "BASE_URL": settings(app).base_url,
            "WEBHOOK_ALLOW_HOSTS": "127.0.0.1",
            **values,
        }
        log = tmp_path / f"worker-{len(procs)}.log"
        logs.append(log)
        procs.append(
            subprocess.Popen(
                [sys.executable, str(ROOT / "worker.py")],
                env=env,
                cwd=ROOT,
                stdout=subprocess.DEVNULL,
                stderr=open(log, "wb"),  # noqa: SIM115 - the process holds it
            )
        )
        return app, sink

    start.procs = procs  # type: ignore[attr-defined]
    try:
        yield start
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
            proc.wait()
        controller.stop()
        for log in logs:
            print(log.read_text(errors="replace")[-3000:])


def _unsubscribe_readers(make_subscriber: Any, n: int) -> None:
    """Make ``n`` subscriber.unsubscribed events, each one webhook delivery."""
    for _ in range(n):
        sub = make_subscriber(status="confirmed")
        unsubscribe(db.session, sub.id)
        db.session.commit()


def _tried() -> dict[int, WebhookDelivery]:
    """Return the deliveries tried at least once, by id, fresh from the database."""
    db.session.expire_all()
    rows = db.session.scalars(sa.select(WebhookDelivery).where(WebhookDelivery.attempts > 0))
    tried = {row.id: row for row in rows}
    db.session.commit()  # end the read: on SQLite it holds the lock the worker needs
    return tried


def _wait(check: Callable[[], Any], timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = check()
        if found:
            return found
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def test_a_confirmation_mail_goes_out_while_every_webhook_receiver_drips(
    worker_world, make_subscriber
):
    dripper = Dripper(every=2.0)
    try:
        app, sink = worker_world()
        with app.app_context():
            truncate_all()
            register_webhook(db.session, dripper.url, ["subscriber.unsubscribed"])
            db.session.commit()
            _unsubscribe_readers(make_subscriber, 3)
            _wait(lambda: dripper.began, 30, "the worker to start posting a webhook")

            signed_up = time.monotonic()
            answer = subscribe(app.test_client(), "new@example.com", "New")
            assert answer.status_code == 200 and "Check your inbox" in answer.text
            sink.wait_for(1, timeout=30)
            took = time.monotonic() - signed_up
            assert [a.rcpt for a in sink.accepted] == ["new@example.com"]
            print(f"sign-up to confirmation mail in the sink: {took:.2f} s")
            # The mail did not wait for a post in progress, nor for those queued behind it.
            assert took <= 3.0, took
            assert len(_tried()) < 3

            rows = _wait(
                lambda: (tried := _tried()) and len(tried) == 3 and tried,
                3 * (DEADLINE + 2) + 10,
                "every webhook try to end",
            )
            ended = time.monotonic()
            for delivery_id, row in rows.items():
                assert (row.status, row.attempts, row.response_code, row.last_error) == (
                    "pending",  # retried after the usual backoff
                    1,
                    None,
                    "timed out",
                )
                assert delivery_id in dripper.began
            # One after the other, each cut off at its deadline.
            last_began = max(dripper.began.values())
            print(f"last webhook try: recorded {ended - last_began:.2f} s after its request")
            assert ended - last_began <= DEADLINE + 2, ended - last_began
            db.session.rollback()
    finally:
        dripper.close()


def test_a_worker_asked_to_stop_records_the_post_in_hand_then_exits(worker_world, make_subscriber):
    dripper = Dripper(every=2.0)
    try:
        app, _sink = worker_world()
        with app.app_context():
            truncate_all()
            register_webhook(db.session, dripper.url, ["subscriber.unsubscribed"])
            db.session.commit()
            _unsubscribe_readers(make_subscriber, 2)
            _wait(lambda: dripper.began, 30, "the worker to start posting a webhook")
            (proc,) = worker_world.procs
            asked = time.monotonic()
            proc.send_signal(signal.SIGTERM)
            assert proc.wait(DEADLINE + 10) == 0
            took = time.monotonic() - asked
            print(f"SIGTERM to exit, a post in hand: {took:.2f} s")
            assert took <= DEADLINE + 3, took
            # The post in hand ran to its deadline and was recorded; the next one waits.
            tried = _tried()
            assert [(r.status, r.attempts, r.last_error) for r in tried.values()] == [
                ("pending", 1, "timed out")
            ]
            assert len(dripper.began) == 1
            db.session.rollback()
    finally:
        dripper.close()


def test_a_retry_waiting_in_the_schedule_is_posted_by_the_worker_process(
    worker_world, make_subscriber
):
    flaky = Receiver(fail_first=1)
    try:
        app, _sink = worker_world(WEBHOOK_RETRY_BASE="1")
        with app.app_context():
            truncate_all()
            register_webhook(db.session, flaky.url, ["subscriber.unsubscribed"])
            db.session.commit()
            _unsubscribe_readers(make_subscriber, 1)
            _wait(lambda: len(flaky.requests) == 2, 30, "the retry after one second")
            row = _wait(
                lambda: next((r for r in _tried().values() if r.status == "ok"), None),
                10,
                "the delivery to be recorded",
            )
            assert (row.attempts, row.response_code, row.last_error) == (2, 204, "")
            db.session.rollback()
    finally:
        flaky.close()


def test_webhooks_go_out_again_after_redis_restarts_empty(worker_world, make_subscriber, tmp_path):
    server = RedisServer(tmp_path / "redis").start()
    receiver = Receiver()
    try:
        app, _sink = worker_world(REDIS_URL=server.url)
        with app.app_context():
            truncate_all()
            register_webhook(db.session, receiver.url, ["subscriber.unsubscribed"])
            db.session.commit()
            _unsubscribe_readers(make_subscriber, 1)
            _wait(lambda: len(receiver.requests) == 1, 30, "the first delivery")

            server.restart(down_for=2.0)  # kill -9, and back with nothing in it
            back = time.monotonic()
            _unsubscribe_readers(make_subscriber, 1)
            _wait(lambda: len(receiver.requests) == 2, 30, "a delivery after the restart")
            took = time.monotonic() - back
            print(f"Redis back to the next delivery: {took:.2f} s")
            # The webhook thread waited for Redis (at most 10 s between tries) and went on.
            assert took <= 15, took
            # The worker records the answer a moment after the receiver has the request.
            _wait(
                lambda: sorted(r.status for r in _tried().values()) == ["ok", "ok"],
                10,
                "both deliveries recorded as delivered",
            )
            db.session.rollback()
    finally:
        receiver.close()
        server.kill()
