"""In Chromium: the issue page tells an editor why a send waits, at desktop and phone width."""

from __future__ import annotations

import os
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from newsletter.extensions import db
from newsletter.models import Issue, IssueStatus, utcnow
from tests.helpers.editors import PASSWORD, add_editor

pytestmark = pytest.mark.browser

SHOTS = Path(os.environ.get("FAULT_SHOTS", "/tmp/shots/faults"))
RELAY_ERROR = "cannot connect to mail.example.org:587: [Errno 111] Connection refused"
PAUSED = (
    "paused: the mail relay refused us at mail: 554 5.7.1 Service unavailable; client host "
    "[192.0.2.10] blocked using zen.spamhaus.org"
)


def _seed(app: Any) -> tuple[int, int]:
    with app.app_context():
        add_editor("ed@example.org")
        now = utcnow()
        waiting = Issue(
            slug="waiting", subject="Tip 31: a relay that is down", body_md="Body",
            status=IssueStatus.SENDING, queued_at=now, audience=0,
            relay_down_since=now - timedelta(seconds=40), relay_error=RELAY_ERROR,
            relay_retry_at=now + timedelta(seconds=600),
        )  # fmt: skip
        paused = Issue(
            slug="paused", subject="Tip 32: a relay that refuses us", body_md="Body",
            status=IssueStatus.PAUSED, queued_at=now, audience=0, pause_reason=PAUSED,
        )  # fmt: skip
        db.session.add_all([waiting, paused])
        db.session.commit()
        ids = (waiting.id, paused.id)
        db.session.remove()
        return ids


def _look(page: Any, name: str) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    for width, height in ((1280, 900), (390, 844)):
        page.set_viewport_size({"width": width, "height": height})
        page.screenshot(path=str(SHOTS / f"{name}-{width}.png"), full_page=True)
        assert page.evaluate("document.documentElement.scrollWidth") <= width, (name, width)
    page.set_viewport_size({"width": 1280, "height": 900})


def test_the_issue_page_explains_a_relay_wait_and_a_pause(live_server, page):
    waiting, paused = _seed(live_server.app)
    page.goto(live_server.url + "/editor/login")
    page.get_by_label("Email").fill("ed@example.org")
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()

    page.goto(f"{live_server.url}/editor/issues/{waiting}")
    relay = page.locator("#relay-notice")
    relay.wait_for()
    # After the live refresh too (progress.json every second), it still says so.
    # Read from here, not by a predicate run in the page: its CSP forbids evaluating strings.
    retry_in = page.locator("[data-k=relay_retry_in]")
    for _ in range(100):
        if int(retry_in.inner_text()) < 600:
            break
        page.wait_for_timeout(100)
    assert int(retry_in.inner_text()) < 600
    assert relay.is_visible() and not page.locator("#paused-notice").is_visible()
    assert "retrying by itself" in relay.inner_text() and "Connection refused" in relay.inner_text()
    assert page.locator("#issue-status").inner_text() == "Sending"
    _look(page, "relay-wait")

    page.goto(f"{live_server.url}/editor/issues/{paused}")
    notice = page.locator("#paused-notice")
    notice.wait_for()
    assert notice.is_visible() and not page.locator("#relay-notice").is_visible()
    assert "This send is paused." in notice.inner_text() and "spamhaus" in notice.inner_text()
    assert "then press Resume" in notice.inner_text()
    page.get_by_role("button", name="Resume").wait_for()
    _look(page, "paused")
