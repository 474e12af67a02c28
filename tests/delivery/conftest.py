"""Fixtures for the delivery tests: worker processes, a sink that fails on purpose."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from aiosmtpd.controller import Controller
from flask import current_app

from newsletter.extensions import db
from newsletter.extensions import settings as app_settings
from newsletter.issues.actions import issue_status
from newsletter.models import Subscriber, SubscriberStatus
from newsletter.tasks.worker import build_worker
from tests.helpers import free_port, truncate_all
from tests.helpers.smtp import start_sink

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parents[2]
N = 2000


# Short leases and a fast reconciler keep most of these tests quick; a test marked
# ``@pytest.mark.world(SETTING=value)`` changes them (``None`` leaves a setting at its default,
# as a production worker has it; ``REDIS_URL`` points the workers and the app elsewhere).
FAST = {
    "BATCH_SIZE": "50",
    "SEND_LEASE_SECONDS": "3",
    "RECONCILE_INTERVAL": "1",
    "SEND_RETRY_BASE": "0.2",
    "SEND_RELAY_WAIT": "0.2",
    "SEND_RELAY_WAIT_MAX": "2",
}


@pytest.fixture
def world(
    make_app: Any, tmp_path: Path, _migrated: str, redis_url: str, request: pytest.FixtureRequest
) -> Iterator[Any]:
    controller, sink = start_sink(free_port())
    marker = request.node.get_closest_marker("world")
    changes = dict(marker.kwargs) if marker else {}
    redis_url = changes.pop("REDIS_URL", None) or redis_url
    settings = {"SMTP_PORT": str(controller.port), **FAST, **changes}
    settings = {k: str(v) for k, v in settings.items() if v is not None}
    app = make_app(REDIS_URL=redis_url, **settings)
    env = {
        **os.environ,
        "NEWSLETTER_ENV": "testing",
        "INSTANCE_PATH": str(tmp_path / "worker-instance"),
        "DATABASE_URL": _migrated,
        "REDIS_URL": redis_url,
        "SMTP_HOST": "127.0.0.1",
        "SECRET_KEY": app_settings(app).secret_key,
        "MAIL_FROM": app_settings(app).mail_from,
        "BASE_URL": app_settings(app).base_url,
        "SMTP_TIMEOUT": "5",
        **settings,
    }
    procs: list[subprocess.Popen[bytes]] = []
    relay = {"up": controller}

    class World:
        def __init__(self) -> None:
            self.app, self.sink, self.env = app, sink, env

        def stop_relay(self) -> None:
            """Take the relay down: connections in progress drop, new ones are refused."""
            up = relay.pop("up")
            up.stop()

        def start_relay(self) -> None:
            """Bring the relay back on the same port, with the same counting handler."""
            again = Controller(sink, hostname="127.0.0.1", port=controller.port, ready_timeout=10)
            again.start()
            relay["up"] = again

        def worker(self) -> subprocess.Popen[bytes]:
            proc = subprocess.Popen(
                [sys.executable, str(ROOT / "worker.py")],
                env=env,
                cwd=ROOT,
                stdout=subprocess.DEVNULL,
                stderr=open(tmp_path / f"worker-{len(procs)}.log", "wb"),  # noqa: SIM115
            )
            procs.append(proc)
            return proc

        def subscribers(self, n: int = N) -> list[str]:
            emails = [f"crash{i}@example.com" for i in range(n)]
            db.session.execute(
                sa.insert(Subscriber),
                [{"email": e, "name": "", "status": SubscriberStatus.CONFIRMED} for e in emails],
            )
            db.session.commit()
            return emails

        def wait_until(self, check: Any, timeout: float = 60.0) -> None:
            deadline = time.monotonic() + timeout
            while not check():
                if time.monotonic() > deadline:
                    raise AssertionError(f"timed out; issue status {self.status()}")
                time.sleep(0.05)

        def status(self) -> dict[str, Any]:
            db.session.remove()
            return issue_status(self.issue_id)

        def finished(self) -> bool:
            return self.status()["status"] == "sent"

    with app.app_context():
        truncate_all()
        yield World()
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
            proc.wait()
        db.session.remove()
    if "up" in relay:
        relay["up"].stop()


# --- one app with a sink that fails on demand, drained by an in-process worker ---------------

FAST_RETRIES = {
    "SEND_RETRY_BASE": "0.05",
    "RECONCILE_INTERVAL": "1",
    "SEND_MAX_ATTEMPTS": "4",
    "SMTP_TIMEOUT": "1",
    "SEND_RELAY_WAIT": "0.05",
    "SEND_RELAY_WAIT_MAX": "2",
}


@pytest.fixture(params=[False, True], ids=["one-by-one", "pipelining"])
def sink(request: Any) -> Iterator[Any]:
    controller, handler = start_sink(free_port())
    handler.port = controller.port
    handler.pipelining = request.param
    yield handler
    controller.stop()


@pytest.fixture
def fault_app(make_app: Any, sink: Any) -> Iterator[Any]:
    app = make_app(SMTP_PORT=str(sink.port), **FAST_RETRIES)
    with app.app_context():
        truncate_all()
        yield app
        db.session.rollback()


@pytest.fixture
def add_reader() -> Any:
    """Insert a subscriber into the app in context (conftest's make_subscriber pushes its own)."""

    def make(email: str, status: str = "confirmed") -> Subscriber:
        sub = Subscriber(email=email, name="", status=SubscriberStatus(status))
        db.session.add(sub)
        db.session.commit()
        return sub

    return make


@pytest.fixture
def run_jobs(redis_client: Any) -> Any:
    """Drain the queues with a real worker of the app in context (not conftest's default app)."""

    def run() -> int:
        db.session.commit()
        worker = build_worker(current_app._get_current_object())
        worker.work(burst=True, with_scheduler=False)
        db.session.expire_all()
        return worker.jobs_done

    return run
