"""Pause and cancel stop a send within about a second, whatever the chunk a worker holds.

Real worker processes against a counting SMTP sink, with batches bigger than the claim chunk
(CLAIM_CHUNK at its default), so the worker is inside a claimed chunk when the editor acts.
"""

from __future__ import annotations

import collections
import time
from typing import Any

import pytest

from newsletter.issues.actions import cancel_issue, create_issue, pause_issue
from newsletter.tasks.dispatch import resume_issue, send_issue
from tests.helpers import override_settings

pytestmark = pytest.mark.slow


def _start(world: Any, readers: int, batch_size: int, *, workers: int, rate: int = 0) -> list[str]:
    override_settings(world.app, batch_size=batch_size)
    world.env["BATCH_SIZE"] = str(batch_size)
    if rate:
        world.env["SEND_RATE"] = str(rate)
    emails = world.subscribers(readers)
    for _ in range(workers):
        world.worker()
    issue = create_issue("Stop me", "Body of the tip.")
    world.issue_id = issue.id
    assert f"queued for {readers}" in send_issue(issue.id)
    return emails


def _stays_still(world: Any, seconds: float) -> int:
    held = len(world.sink.accepted)
    time.sleep(seconds)
    assert len(world.sink.accepted) == held, f"{len(world.sink.accepted) - held} more arrived"
    return held


def test_pause_unthrottled_stops_the_chunk_in_hand(world):
    # No SEND_RATE; a relay taking 10 ms a message, so one claimed chunk outlasts the wait.
    world.sink.data_delay = 0.01
    emails = _start(world, 400, batch_size=400, workers=1)
    world.wait_until(lambda: len(world.sink.accepted) >= 20)
    pause_issue(world.issue_id)
    time.sleep(1.5)  # the copy in flight finishes
    held = _stays_still(world, 3.0)
    assert held < len(emails)
    found = world.status()
    assert found["status"] == "paused" and found["sent"] == held
    assert found["queued"] == len(emails) - held and found["sending"] == 0
    resume_issue(world.issue_id)
    world.wait_until(world.finished)
    copies = collections.Counter(a.rcpt for a in world.sink.accepted)
    assert set(copies) == set(emails) and set(copies.values()) == {1}
    found = world.status()
    assert found["sent"] == found["audience"] == len(emails)


def test_cancel_at_send_rate_stops_within_a_second_and_counts_true(world):
    emails = _start(world, 300, batch_size=150, workers=2, rate=50)
    world.wait_until(lambda: len(world.sink.accepted) >= 1)
    time.sleep(1.5)
    assert "is cancelled" in cancel_issue(world.issue_id)
    time.sleep(1.0)
    held = _stays_still(world, 2.0)
    assert 0 < held < len(emails)
    found = world.status()
    assert found["status"] == "cancelled"
    assert found["queued"] == found["sending"] == 0
    assert found["sent"] + found["failed"] + found["skipped"] == found["audience"] == len(emails)
    assert found["sent"] == held == len(world.sink.accepted)
    copies = collections.Counter(a.rcpt for a in world.sink.accepted)
    assert set(copies.values()) == {1}


def test_status_shows_who_paused_a_send(world):
    _start(world, 600, batch_size=600, workers=1, rate=50)
    world.wait_until(lambda: len(world.sink.accepted) >= 5)
    pause_issue(world.issue_id)
    time.sleep(1.0)
    out = world.app.test_cli_runner().invoke(args=["issues", "status", str(world.issue_id)])
    assert out.exit_code == 0, out.output
    lines = out.output.splitlines()
    assert lines[0] == "state paused: paused by an editor"
    assert [line.split()[0] for line in lines[1:5]] == ["queued", "sent", "failed", "skipped"]
    found = world.status()
    assert lines[2] == f"sent {found['sent']}" == f"sent {len(world.sink.accepted)}"
