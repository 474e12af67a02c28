"""Fixtures for the bounce tests: an issue really sent to readers, and fixtures filled in.

``sent`` sends a real issue through the worker to an aiosmtpd sink, as in the delivery
tests; each copy the sink accepted carries its real Message-ID and, with BOUNCE_ADDRESS,
its VERP envelope sender. ``filled`` writes those into a bounce fixture.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from flask import current_app

from newsletter.extensions import db
from newsletter.extensions import settings as app_settings
from newsletter.issues.actions import create_issue
from newsletter.models import Bounce, Delivery, Subscriber, SubscriberStatus, utcnow
from newsletter.tasks.dispatch import send_issue
from newsletter.tasks.worker import build_worker
from tests.helpers import free_port, truncate_all
from tests.helpers.smtp import FaultHandler, start_sink

FIXTURES = Path(__file__).parent / "fixtures"
ROOT = Path(__file__).resolve().parents[2]
BOUNCE_ADDRESS = "bounces@example.org"
FOREIGN_ID = "<CAF0reign+id=42@mail.elsewhere.example>"


@dataclass(frozen=True)
class Copy:
    """One copy the sink accepted, and whose it is."""

    subscriber_id: int
    email: str
    message_id: str
    envelope_from: str  # the VERP address with BOUNCE_ADDRESS, else MAIL_FROM's address
    delivery_id: int
    issue_id: int


def filled(
    name: str, copy: Copy | None, *, envelope_to: str | None = None, message_id: str | None = None
) -> bytes:
    """Return fixture ``name`` with the copy's Message-ID, envelope and address in it."""
    raw = (FIXTURES / name).read_bytes()
    values = {
        b"{message_id}": message_id or (copy.message_id if copy else FOREIGN_ID),
        b"{envelope_to}": envelope_to or (copy.envelope_from if copy else BOUNCE_ADDRESS),
        b"{recipient}": copy.email if copy else "stranger@elsewhere.example",
    }
    for placeholder, value in values.items():
        raw = raw.replace(placeholder, value.encode())
    return raw


def crlf(raw: bytes) -> bytes:
    """Return the message with CRLF line ends, as it travels over SMTP."""
    return raw.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")


@pytest.fixture
def sink() -> Iterator[FaultHandler]:
    controller, handler = start_sink(free_port())
    handler.port = controller.port
    yield handler
    controller.stop()


@pytest.fixture
def settings() -> dict[str, str]:
    """Settings of the app under test (a test may change them before using ``bounce_app``)."""
    return {"BOUNCE_ADDRESS": BOUNCE_ADDRESS, "SEND_RETRY_BASE": "0.05", "SMTP_TIMEOUT": "2"}


@pytest.fixture
def bounce_app(make_app: Any, sink: FaultHandler, settings: dict[str, str]) -> Iterator[Any]:
    app = make_app(SMTP_PORT=str(sink.port), **settings)
    with app.app_context():
        truncate_all()
        yield app
        db.session.rollback()


@pytest.fixture
def run_jobs(redis_client: Any) -> Callable[[], int]:
    """Drain the queues with a real worker of the app in context."""

    def run() -> int:
        db.session.commit()
        worker = build_worker(current_app._get_current_object())
        worker.work(burst=True, with_scheduler=False)
        db.session.expire_all()
        return int(worker.jobs_done)

    return run


@pytest.fixture
def sent(bounce_app: Any, sink: FaultHandler, run_jobs: Callable[[], int]) -> Callable[..., Any]:
    """Add ``new_readers`` confirmed readers, send a real issue to everyone confirmed, and
    return the copies in reader order."""
    counter = iter(range(1, 10**6))

    def send(new_readers: int = 0) -> list[Copy]:
        for _ in range(new_readers):
            db.session.add(
                Subscriber(
                    email=f"reader{next(counter)}@example.com",
                    name="",
                    status=SubscriberStatus.CONFIRMED,
                    confirmed_at=utcnow(),
                )
            )
        db.session.commit()
        issue_id = create_issue(f"Tip {next(counter)}", "Find the commit that broke it.").id
        before = len(sink.accepted)
        send_issue(issue_id)
        run_jobs()
        rows = db.session.execute(
            sa.select(Delivery.id, Subscriber.id, Subscriber.email)
            .join(Subscriber, Subscriber.id == Delivery.subscriber_id)
            .where(Delivery.issue_id == issue_id)
            .order_by(Subscriber.id)
        ).all()
        accepted = {a.rcpt: a for a in sink.accepted[before:]}
        assert len(accepted) == len(rows), "every reader's copy reached the sink"
        # No transaction stays open: on SQLite even a read holds the write lock (BEGIN
        # IMMEDIATE), and the commands under test run in processes of their own.
        db.session.commit()
        return [
            Copy(sid, email, accepted[email].message_id, accepted[email].mail_from, did, issue_id)
            for did, sid, email in rows
        ]

    return send


def status_of(subscriber_id: int) -> str | None:
    """Return a reader's status as stored now (None: erased)."""
    db.session.expire_all()
    value = db.session.scalar(sa.select(Subscriber.status).where(Subscriber.id == subscriber_id))
    db.session.commit()
    return None if value is None else value.value


def bounce_rows() -> list[Bounce]:
    """Return every Bounce row, oldest first."""
    db.session.expire_all()
    rows = list(db.session.scalars(sa.select(Bounce).order_by(Bounce.id)))
    db.session.commit()
    return rows


def process_env(app: Any, **extra: str) -> dict[str, str]:
    """Return the environment a `newsletter` process needs to run against the test app."""
    config = app_settings(app)
    return {
        **os.environ,
        "NEWSLETTER_ENV": "testing",
        "INSTANCE_PATH": str(Path(app.instance_path).parent / "cli-instance"),
        "DATABASE_URL": _plain_database_url(config.database_url),
        "REDIS_URL": config.redis_url or "",
        "SECRET_KEY": config.secret_key,
        "MAIL_FROM": config.mail_from,
        "BASE_URL": config.base_url,
        "BOUNCE_ADDRESS": config.bounce_address or "",
        "BOUNCE_SOFT_LIMIT": str(config.bounce_soft_limit),
        **extra,
    }


def _plain_database_url(uri: str) -> str:
    return uri.replace("postgresql+psycopg://", "postgresql://", 1)
