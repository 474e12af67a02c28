"""/healthz tells an operator what it knows of the workers and of paused sends.

A real worker process is started and killed; the status code stays about the web process
(200 while the database and Redis answer), the body says no worker is alive any more.
"""

from __future__ import annotations

import signal
from datetime import UTC, datetime
from typing import Any

from newsletter.issues.actions import create_issue, pause_issue
from newsletter.tasks.dispatch import send_issue


def _health(world: Any) -> dict[str, Any]:
    answer = world.app.test_client().get("/healthz")
    assert answer.status_code == 200
    body = answer.get_json()
    assert body["database"] == "ok" and body["redis"] == "ok"
    return dict(body)


def _alive(world: Any) -> int:
    return int(_health(world)["workers"]["alive"])


def test_healthz_counts_live_workers_and_sees_one_killed_at_once(world):
    assert _alive(world) == 0
    started = datetime.now(UTC).replace(microsecond=0)
    worker = world.worker()
    world.wait_until(lambda: _alive(world) == 1)
    world.worker()
    world.wait_until(lambda: _alive(world) == 2)

    worker.send_signal(signal.SIGKILL)
    worker.wait()
    world.wait_until(lambda: _alive(world) == 1, timeout=10)
    seen = datetime.fromisoformat(_health(world)["workers"]["last_seen"])
    assert seen >= started


def test_healthz_stays_200_with_no_worker_and_names_paused_sends(world):
    world.subscribers(3)
    issue = create_issue("Held back", "Hello")
    send_issue(issue.id)
    pause_issue(issue.id)
    body = _health(world)
    assert body["workers"]["alive"] == 0
    assert body["paused_sends"] == [{"issue": issue.id, "reason": "paused by an editor"}]

    worker = world.worker()
    world.wait_until(lambda: _alive(world) == 1)
    worker.send_signal(signal.SIGTERM)  # a clean stop unregisters at once
    worker.wait(timeout=30)
    assert _alive(world) == 0
    assert _health(world)["paused_sends"] == body["paused_sends"]
