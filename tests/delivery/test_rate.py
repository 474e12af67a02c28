"""SEND_RATE holds across two worker processes, measured by the sink's clock."""

from __future__ import annotations

import pytest

from newsletter.issues.actions import create_issue
from newsletter.tasks.dispatch import send_issue

pytestmark = pytest.mark.slow
RATE = 20


def test_send_rate_holds_across_two_workers(world):
    world.env["SEND_RATE"] = str(RATE)
    emails = world.subscribers(70)
    world.worker(), world.worker()
    issue = create_issue("Rate", "Body")
    world.issue_id = issue.id
    send_issue(issue.id)
    world.wait_until(world.finished, timeout=30)
    times = sorted(a.at for a in world.sink.accepted)
    assert len(times) == len(emails)
    # In any window of w seconds: at most w × rate, plus a burst of one second's worth. The
    # sink sees acceptances, not the throttle's grants: a copy granted just before a window
    # may be accepted inside it, one in flight per worker.
    workers = 2
    for w in (1.0, 2.0):
        most = max(sum(1 for t in times if start <= t < start + w) for start in times)
        assert most <= RATE * w + RATE + workers, (w, most)
    assert times[-1] - times[0] >= (len(times) - 2 * RATE) / RATE
