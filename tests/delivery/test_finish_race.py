"""Two workers finishing the last batches of a send at the same instant: one of them must
mark the issue sent (it was once left `sending` on PostgreSQL with every copy out)."""

from __future__ import annotations

import subprocess
import sys

import pytest

from newsletter.extensions import db
from newsletter.issues.actions import create_issue
from newsletter.tasks.dispatch import send_issue

pytestmark = pytest.mark.slow

ISSUES = 40


@pytest.mark.world(BATCH_SIZE=10, RECONCILE_INTERVAL=3600)
def test_every_issue_is_marked_sent_when_batches_end_together(world):
    world.subscribers(30)  # three batches per issue: one per worker, ending together
    ids = []
    for n in range(ISSUES):
        issue = create_issue(f"Race {n}", "Body.")
        assert "queued for 30" in send_issue(issue.id)
        ids.append(issue.id)
    # Burst workers run no periodic reconciler, which would otherwise paper over a race by
    # finishing a forgotten send up to RECONCILE_INTERVAL later.
    # On SQLite every transaction takes the write lock (BEGIN IMMEDIATE): hold none.
    db.session.remove()
    cmd = [sys.executable, "-m", "newsletter.main", "worker", "--burst"]
    procs = [subprocess.Popen(cmd, env=world.env, stderr=subprocess.DEVNULL) for _ in range(3)]
    for proc in procs:
        assert proc.wait(timeout=120) == 0
    states = {}
    for issue_id in ids:
        world.issue_id = issue_id
        states[issue_id] = world.status()
    assert {i: s["status"] for i, s in states.items() if s["status"] != "sent"} == {}
    assert all(s["sent"] == 30 for s in states.values())
    assert len(world.sink.accepted) == 30 * ISSUES
