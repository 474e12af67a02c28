"""Webhooks go to public addresses only, pinned to the address checked, within one deadline.

Real HTTP servers on 127.0.0.1 stand in for a receiver; the tests' settings allow 127.0.0.1
(tests/conftest.py) and these tests take that allowance away or grant others as they need.
"""

from __future__ import annotations

import ipaddress
import socket
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler
from typing import Any

import pytest
import sqlalchemy as sa
from rq.registry import ScheduledJobRegistry

from newsletter.config import ConfigError, load_settings
from newsletter.extensions import db
from newsletter.models import Webhook, WebhookDelivery
from newsletter.subscribers.state import unsubscribe
from newsletter.tasks.queues import ALL_QUEUES, MAIL_QUEUE, WEBHOOK_QUEUE, get_queue
from newsletter.tasks.worker import build_worker
from newsletter.webhooks.address import forbidden
from newsletter.webhooks.events import register_webhook
from newsletter.webhooks.post import DEADLINE
from tests.helpers import override_settings, truncate_all
from tests.helpers.editors import editor_client, page_token
from tests.helpers.receivers import Dripper, QuietHTTPServer
from tests.webhooks.test_webhooks import Receiver, verify

FORBIDDEN_URLS = [
    "http://127.0.0.1/hook",
    "http://127.0.0.1:6379/",
    "http://localhost/hook",
    "http://169.254.169.254/latest/meta-data/",
    "http://[::1]/hook",
    "http://0x7f000001/hook",
    "http://2130706433/hook",
    "http://metadata.google.internal/computeMetadata/v1/",
    "http://10.0.0.5/hook",
    "http://192.168.1.1/hook",
    "http://[::ffff:127.0.0.1]/hook",
    "http://[::ffff:169.254.169.254]/hook",
    "http://0.0.0.0/hook",
    "http://224.0.0.1/hook",
    "http://[fe80::1]/hook",
    # IPv6 forms that carry an internal IPv4 address: 6to4, NAT64, IPv4-compatible, Teredo.
    "http://[2002:7f00:1::]/hook",
    "http://[2002:a00:5::1]/hook",
    "http://[64:ff9b::127.0.0.1]/hook",
    "http://[64:ff9b::a9fe:a9fe]/latest/meta-data/",
    "http://[64:ff9b:1::7f00:1]/hook",
    "http://[::127.0.0.1]/hook",
    "http://[2001:0:4136:e378:8000:63bf:80ff:fffe]/hook",
]


@pytest.fixture
def strict_app(make_app: Any) -> Iterator[Any]:
    """An app with no host allowed: the production default."""
    app = make_app(WEBHOOK_ALLOW_HOSTS="")
    with app.app_context():
        truncate_all()
        yield app
        db.session.rollback()


def _register(client: Any, url: str) -> Any:
    token = page_token(client, "/editor/webhooks")
    return client.post(
        "/editor/webhooks",
        data={"csrf_token": token, "url": url, "events": ["subscriber.unsubscribed"]},
    )


def _hooks() -> int:
    return int(db.session.scalar(sa.select(sa.func.count()).select_from(Webhook)) or 0)


def _unsubscribe_someone(make_subscriber: Any) -> None:
    sub = make_subscriber(status="confirmed")
    unsubscribe(db.session, sub.id)
    db.session.commit()


def test_every_internal_url_form_is_refused_at_registration(strict_app):
    client = editor_client(strict_app)
    for url in FORBIDDEN_URLS:
        answer = _register(client, url)
        assert answer.status_code == 400, url
        assert "internal address" in answer.text or "metadata service" in answer.text, url
        assert "Webhook added" not in answer.text
    assert _hooks() == 0


def test_a_name_that_does_not_resolve_is_refused_with_a_clear_message(strict_app):
    answer = _register(editor_client(strict_app), "https://no-such-host.invalid/hook")
    assert answer.status_code == 400 and "does not resolve" in answer.text
    assert _hooks() == 0


def test_localhost_is_refused_unless_an_operator_allows_it(make_app, make_subscriber):
    receiver = Receiver()
    url = receiver.url.replace("127.0.0.1", "localhost")
    try:
        app = make_app()  # 127.0.0.1 is allowed as written, which does not allow "localhost"
        with app.app_context():
            truncate_all()
            refused = _register(editor_client(app), url)
            assert refused.status_code == 400 and "internal address (127.0.0.1)" in refused.text
            assert "WEBHOOK_ALLOW_HOSTS" in refused.text
            assert _hooks() == 0
        app = make_app(WEBHOOK_ALLOW_HOSTS="intranet.example, localhost")
        with app.app_context():
            truncate_all()
            added = _register(editor_client(app), url)
            assert added.status_code == 200 and "Webhook added" in added.text
            assert _hooks() == 1
            db.session.rollback()
    finally:
        receiver.close()


def test_a_host_no_longer_allowed_is_refused_at_connect_time(make_app, make_subscriber):
    receiver = Receiver()
    try:
        app = make_app(WEBHOOK_ALLOW_HOSTS="localhost")
        with app.app_context():
            truncate_all()
            hook = register_webhook(
                db.session,
                receiver.url.replace("127.0.0.1", "localhost"),
                ["subscriber.unsubscribed"],
            )
            db.session.commit()
            _unsubscribe_someone(make_subscriber)
            _run(app)
            assert len(receiver.requests) == 1  # allowed: delivered, signed
            headers, body = receiver.requests[0]
            assert verify(hook.secret, headers, body)
            assert headers["Host"] == f"localhost:{receiver.server.server_address[1]}"

            # The operator takes the allowance back: the next delivery is refused when it
            # connects, since localhost resolves to 127.0.0.1.
            override_settings(app, webhook_allow_hosts=frozenset())
            _unsubscribe_someone(make_subscriber)
            _run(app)
            assert len(receiver.requests) == 1
            row = db.session.scalars(
                sa.select(WebhookDelivery).order_by(WebhookDelivery.id.desc())
            ).first()
            assert row is not None
            assert (row.status, row.attempts, row.response_code, row.last_error) == (
                "pending",
                1,
                None,
                "refused: address not allowed",
            )
            db.session.rollback()
    finally:
        receiver.close()


def _run(app: Any) -> int:
    db.session.commit()
    worker = build_worker(app)
    worker.work(burst=True, with_scheduler=False)
    db.session.expire_all()
    return int(worker.jobs_done)


def test_a_dripping_receiver_is_cut_off_at_the_deadline_and_retried(app, run_jobs, make_subscriber):
    dripper = Dripper(every=5.0)
    try:
        register_webhook(db.session, dripper.url, ["subscriber.unsubscribed"])
        db.session.commit()
        _unsubscribe_someone(make_subscriber)
        started = time.monotonic()
        assert run_jobs() == 1
        took = time.monotonic() - started
        assert dripper.got_request.is_set()
        assert DEADLINE - 0.5 <= took <= DEADLINE + 3, took
        row = db.session.scalar(sa.select(WebhookDelivery))
        assert (row.status, row.attempts, row.last_error) == ("pending", 1, "timed out")
        # The retry waits in RQ's schedule, on the webhooks queue, per the usual backoff.
        assert len(ScheduledJobRegistry(queue=get_queue(WEBHOOK_QUEUE))) == 1
    finally:
        dripper.close()


def test_errors_in_the_log_are_coarse(app, run_jobs, make_subscriber):
    closed = socket.socket()
    closed.bind(("127.0.0.1", 0))
    port = closed.getsockname()[1]
    closed.close()  # nothing listens there now
    failing = Receiver(fail_first=99)
    redirect = _Redirector(failing.url)
    try:
        for url in (f"http://127.0.0.1:{port}/hook", failing.url, redirect.url):
            register_webhook(db.session, url, ["subscriber.unsubscribed"])
        db.session.commit()
        _unsubscribe_someone(make_subscriber)
        run_jobs()
        rows = db.session.scalars(sa.select(WebhookDelivery).order_by(WebhookDelivery.id)).all()
        assert [(r.response_code, r.last_error) for r in rows] == [
            (None, "could not connect"),
            (503, "HTTP 503"),
            (302, "HTTP 302"),  # redirects are not followed
        ]
        assert len(failing.requests) == 1  # only its own delivery, not the redirected one
    finally:
        failing.close()
        redirect.close()


class _Redirector:
    def __init__(self, to: str) -> None:
        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - the stdlib's name
                self.rfile.read(int(self.headers["Content-Length"]))
                self.send_response(302)
                self.send_header("Location", to)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.server = QuietHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def test_webhook_jobs_have_their_own_queue_after_mail(app, make_subscriber):
    assert ALL_QUEUES[0] == MAIL_QUEUE
    assert ALL_QUEUES.index(WEBHOOK_QUEUE) > ALL_QUEUES.index(MAIL_QUEUE)
    register_webhook(db.session, "http://127.0.0.1:9/hook", ["subscriber.unsubscribed"])
    db.session.commit()
    _unsubscribe_someone(make_subscriber)
    assert get_queue(WEBHOOK_QUEUE).count == 1
    assert get_queue(MAIL_QUEUE).count == 0 and get_queue().count == 0


@pytest.mark.parametrize(
    "address",
    [
        "127.0.0.1",
        "::1",
        "::ffff:127.0.0.1",
        "::ffff:10.1.2.3",
        "169.254.169.254",
        "100.64.0.1",
        "2002:7f00:1::",
        "2002:c0a8:101::1",
        "64:ff9b::7f00:1",
        "64:ff9b::a00:5",
        "64:ff9b:1::5db8:d822",
        "::5db8:d822",
        "2001:0:5db8:d822::80ff:fffe",
    ],
)
def test_internal_addresses_are_forbidden(address):
    assert forbidden(ipaddress.ip_address(address))


@pytest.mark.parametrize(
    "address",
    ["93.184.216.34", "2606:4700:4700::1111", "2002:5db8:d822::1", "64:ff9b::5db8:d822"],
)
def test_public_addresses_are_not(address):
    # 6to4 and NAT64 to a public IPv4 address are how IPv6-only hosts reach the IPv4 internet.
    assert not forbidden(ipaddress.ip_address(address))


def test_a_metadata_address_wrapped_in_ipv6_stays_refused_when_its_host_is_allowed(make_app):
    app = make_app(WEBHOOK_ALLOW_HOSTS="2002:a9fe:a9fe::, 64:ff9b::a9fe:a9fe")
    with app.app_context():
        truncate_all()
        client = editor_client(app)
        for url in ("http://[2002:a9fe:a9fe::]/", "http://[64:ff9b::169.254.169.254]/"):
            answer = _register(client, url)
            assert answer.status_code == 400 and "internal address" in answer.text, url
        assert _hooks() == 0
        db.session.rollback()


def test_the_allow_list_setting_is_validated(tmp_path):
    env = {"NEWSLETTER_ENV": "testing", "SECRET_KEY": "x" * 40}
    loaded = load_settings(
        {**env, "WEBHOOK_ALLOW_HOSTS": " Hooks.Intranet., 10.0.0.5,[::1]"}, tmp_path
    )
    assert loaded.webhook_allow_hosts == {"hooks.intranet", "10.0.0.5", "::1"}
    assert load_settings(env, tmp_path).webhook_allow_hosts == frozenset()
    with pytest.raises(ConfigError, match="WEBHOOK_ALLOW_HOSTS.*'bad host'"):
        load_settings({**env, "WEBHOOK_ALLOW_HOSTS": "ok.example,bad host"}, tmp_path)
    with pytest.raises(ConfigError, match="WEBHOOK_ALLOW_HOSTS"):
        load_settings({**env, "WEBHOOK_ALLOW_HOSTS": "http://x.example/"}, tmp_path)
