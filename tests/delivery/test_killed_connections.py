"""Database connections killed under a running send (``pg_terminate_backend``) send nobody twice.

No worker dies: only their connections do, over and over, while they send. A copy the relay
accepted is still recorded as sent (the write is retried on a fresh connection, the send
never is), nobody is left out, and ``issues status`` reports no possible duplicate.
"""

from __future__ import annotations

import threading
from collections import Counter

import pytest
import sqlalchemy as sa

from newsletter.extensions import db
from newsletter.issues.actions import create_issue
from newsletter.tasks.dispatch import send_issue
from tests.helpers import TEST_DATABASE_URL

pytestmark = pytest.mark.skipif(
    not TEST_DATABASE_URL or not TEST_DATABASE_URL.startswith("postgres"),
    reason="pg_terminate_backend is PostgreSQL's",
)

WORKERS_APP = "newsletter-worker-under-test"
ROUNDS = 6
READERS = 1500


def _kill_workers_connections(engine: sa.Engine) -> int:
    """Terminate every backend the worker processes hold (never this test's own); say how many."""
    with engine.connect() as conn:
        killed = conn.execute(
            sa.text(
                "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity"
                " WHERE datname = current_database() AND pid <> pg_backend_pid()"
                " AND application_name = :name"
            ),
            {"name": WORKERS_APP},
        ).scalar_one()
        conn.commit()
    return int(killed)


@pytest.mark.world(SEND_RATE="150", BATCH_SIZE="100")
def test_killed_database_connections_during_a_send_duplicate_nobody(world):
    separator = "&" if "?" in world.env["DATABASE_URL"] else "?"
    world.env["DATABASE_URL"] += f"{separator}application_name={WORKERS_APP}"
    emails = world.subscribers(READERS)
    issue = create_issue("Killed connections", "Body of the tip.")
    world.issue_id = issue.id
    send_issue(issue.id)
    db.session.remove()
    workers = [world.worker(), world.worker()]
    engine = db.engine
    killed: list[int] = []
    stop = threading.Event()

    def killer() -> None:
        # A round each time another ~200 copies went out, until the send is well past half.
        for n in range(1, ROUNDS + 1):
            try:
                world.sink.wait_for(n * 200, timeout=60)
            except AssertionError:
                return
            if stop.is_set():
                return
            killed.append(_kill_workers_connections(engine))

    thread = threading.Thread(target=killer, daemon=True)
    thread.start()
    try:
        world.wait_until(world.finished, timeout=180)
    finally:
        stop.set()
        thread.join(timeout=70)
    assert len(killed) == ROUNDS and all(k > 0 for k in killed), killed
    assert all(w.poll() is None for w in workers)  # no worker died: only their connections
    counts = Counter(a.rcpt for a in world.sink.accepted)
    assert set(counts) == set(emails), f"{len(set(emails) - set(counts))} readers got nothing"
    assert {e: n for e, n in counts.items() if n > 1} == {}
    found = world.status()
    assert (found["sent"], found["failed"], found["possible_duplicates"]) == (READERS, 0, 0)
    out = world.app.test_cli_runner().invoke(args=["issues", "status", str(world.issue_id)])
    assert out.output.splitlines()[0] == "state sent"
    assert "possible_duplicates" not in out.output
