"""Work Redis lost is rebuilt from the database: confirmation and welcome mails, imports.

Real worker processes, a real Redis and a real SMTP sink. "Redis down" is a web app pointed at
a port where nothing listens; "Redis lost it" is a FLUSHDB of the test database.
"""

from __future__ import annotations

import email
import email.policy
import io
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from email.message import EmailMessage
from pathlib import Path
from typing import Any, NamedTuple

import pytest
import sqlalchemy as sa
from rq import Queue
from rq.serializers import JSONSerializer

from newsletter.extensions import db, settings
from newsletter.models import ImportStatus, Subscriber, SubscriberStatus
from tests.helpers import csrf_from, free_port, truncate_all
from tests.helpers.editors import editor_client
from tests.helpers.readers import link_to, subscribe, subscriber
from tests.helpers.smtp import Accepted, start_sink

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parents[2]
SETTINGS = {"RECONCILE_INTERVAL": "1", "SEND_LEASE_SECONDS": "3", "SMTP_TIMEOUT": "5"}


class World:
    """The web app (Redis up), another on a Redis that is down, worker processes, the sink."""

    def __init__(self, make_app: Callable[..., Any], tmp_path: Path, env: dict[str, str]) -> None:
        self.make_app, self.tmp_path, self.env = make_app, tmp_path, env
        self.procs: list[subprocess.Popen[bytes]] = []

    def worker(self) -> subprocess.Popen[bytes]:
        log = open(self.tmp_path / f"worker-{len(self.procs)}.log", "wb")  # noqa: SIM115
        proc = subprocess.Popen(
            [sys.executable, str(ROOT / "worker.py")],
            env=self.env,
            cwd=ROOT,
            stdout=subprocess.DEVNULL,
            stderr=log,
        )
        self.procs.append(proc)
        return proc

    def redis_down_app(self) -> Any:
        return self.make_app(
            REDIS_URL=f"redis://127.0.0.1:{free_port()}/0",
            SMTP_PORT=self.env["SMTP_PORT"],
            **SETTINGS,
        )


@pytest.fixture
def world(make_app: Any, tmp_path: Path, _migrated: str, redis_url: str) -> Iterator[Any]:
    controller, sink = start_sink(free_port())
    app = make_app(SMTP_PORT=str(controller.port), **SETTINGS)
    env = {
        **os.environ,
        "NEWSLETTER_ENV": "testing",
        "INSTANCE_PATH": str(tmp_path / "worker-instance"),
        "DATABASE_URL": _migrated,
        "REDIS_URL": redis_url,
        "SMTP_HOST": "127.0.0.1",
        "SMTP_PORT": str(controller.port),
        "SECRET_KEY": settings(app).secret_key,
        "MAIL_FROM": settings(app).mail_from,
        "BASE_URL": settings(app).base_url,
        **SETTINGS,
    }
    found = World(make_app, tmp_path, env)
    found.app, found.sink = app, sink
    with app.app_context():
        truncate_all()
        yield found
        for proc in found.procs:
            if proc.poll() is None:
                proc.kill()
            proc.wait()
        db.session.remove()
    controller.stop()


def wait_until(check: Callable[[], bool], timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError("timed out")
        time.sleep(0.05)


def parsed(accepted: Accepted) -> EmailMessage:
    msg = email.message_from_bytes(accepted.raw, policy=email.policy.default)
    assert isinstance(msg, EmailMessage)
    return msg


def subjects(accepted: list[Accepted]) -> list[str]:
    return [str(parsed(a)["Subject"]) for a in accepted]


def test_a_sign_up_while_redis_is_down_is_mailed_once_redis_and_a_worker_are_back(world):
    down = world.redis_down_app().test_client()
    first = subscribe(down, "ann@example.com", "Ann")
    assert first.status_code == 200 and "Check your inbox" in first.text
    # Trying again at once (as people do when no mail comes) answers the same, sends no second.
    assert subscribe(down, "ann@example.com", "Ann").text == first.text
    # The same moment through an app whose Redis answers: its own job, and no second from the
    # reconciler.
    assert subscribe(world.app.test_client(), "bo@example.com").status_code == 200
    assert subscriber("ann@example.com").status is SubscriberStatus.PENDING
    assert world.sink.accepted == []

    world.worker()
    world.sink.wait_for(2)
    time.sleep(3)  # three more reconciler ticks
    assert len(world.sink.to("ann@example.com")) == 1
    assert len(world.sink.to("bo@example.com")) == 1

    # Confirming while Redis is down again: the page answers, the welcome follows later.
    (mail,) = world.sink.to("ann@example.com")
    assert down.post(link_to(parsed(mail), "/confirm/")).status_code == 200
    assert subscriber("ann@example.com").status is SubscriberStatus.CONFIRMED
    world.sink.wait_for(3)
    time.sleep(3)
    to_ann = world.sink.to("ann@example.com")
    assert subjects(to_ann) == [
        "Please confirm your subscription to Tip of the Week",
        "Welcome to Tip of the Week",
    ]
    assert subscriber("ann@example.com").welcome_due_at is None


def csv_text(n: int, prefix: str) -> str:
    return "email,name\n" + "".join(f"{prefix}{i}@example.com,Reader {i}\n" for i in range(n))


def upload(client: Any, text: str, mode: str) -> Any:
    token = csrf_from(client.get("/editor/import").text)
    checked = client.post(
        "/editor/import",
        data={"csrf_token": token, "mode": mode, "file": (io.BytesIO(text.encode()), "p.csv")},
        content_type="multipart/form-data",
    )
    # The column check comes first; starting the import from it queues the job.
    start = checked.headers["Location"].replace("/check", "/start")
    answer = client.post(start, data={"csrf_token": token})
    # The requests ran in this test's app context: end their session's transaction, which
    # on SQLite holds the write lock.
    db.session.commit()
    return answer


class Progress(NamedTuple):
    status: ImportStatus
    done_rows: int
    added: int
    attempt: int


def the_import() -> Progress:
    """Read the one import's progress on a raw connection, outside any transaction.

    The app's SQLite sessions begin with BEGIN IMMEDIATE, which would queue this poll behind
    the worker's import transactions (and make the worker wait for it).
    """
    raw = db.engine.raw_connection()
    try:
        cursor = raw.cursor()
        cursor.execute("SELECT status, done_rows, added, attempt FROM import_job")
        status, done_rows, added, attempt = cursor.fetchone()
        raw.rollback()
    finally:
        raw.close()
    return Progress(ImportStatus(status), done_rows, added, attempt)


def test_an_import_whose_job_redis_lost_runs_once_a_worker_is_back(world, redis_client):
    client = editor_client(world.app)
    assert upload(client, csv_text(5, "imp"), "confirm").status_code == 302
    queue = Queue("default", connection=redis_client, serializer=JSONSerializer)
    assert queue.count == 1
    redis_client.flushdb()  # Redis loses everything before any worker saw the job

    world.worker()
    wait_until(lambda: the_import().status is ImportStatus.DONE)
    world.sink.wait_for(5)
    time.sleep(3)
    for i in range(5):
        assert len(world.sink.to(f"imp{i}@example.com")) == 1
    assert len(world.sink.accepted) == 5
    assert the_import()[1:] == (5, 5, 1)


def test_an_import_left_running_by_a_killed_worker_carries_on_and_mails_everyone_once(
    world, redis_client
):
    n = 600
    client = editor_client(world.app)
    assert upload(client, csv_text(n, "run"), "confirm").status_code == 302
    first = world.worker()
    wait_until(lambda: the_import().done_rows > 0, timeout=120)
    first.send_signal(signal.SIGKILL)
    first.wait()
    halfway = the_import()
    assert halfway.status is ImportStatus.RUNNING and 0 < halfway.done_rows < n

    world.worker()
    wait_until(lambda: the_import().status is ImportStatus.DONE, timeout=120)
    assert the_import()[1:] == (n, n, 2)
    stored = db.session.scalar(sa.select(sa.func.count()).select_from(Subscriber))
    db.session.commit()
    assert stored == n
    world.sink.wait_for(n, timeout=240)
    time.sleep(3)
    counts = {f"run{i}@example.com": len(world.sink.to(f"run{i}@example.com")) for i in range(n)}
    assert set(counts.values()) == {1}
