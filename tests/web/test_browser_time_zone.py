"""In Chromium: times follow the browser's zone until the editor keeps one on their account;
then every page says them in that zone, whatever the browser's, with UTC on hover."""

from __future__ import annotations

import os
from datetime import UTC, datetime
from pathlib import Path

import pytest
from playwright.sync_api import expect

from newsletter.extensions import db
from newsletter.models import Issue, IssueStatus
from tests.helpers.editors import PASSWORD, add_editor

pytestmark = pytest.mark.browser


def shoot(page, name: str) -> None:
    """Save the page at 1280 and 390 px wide when SHOTS_DIR names a folder (for review)."""
    folder = os.environ.get("SHOTS_DIR")
    if not folder:
        return
    Path(folder).mkdir(parents=True, exist_ok=True)
    for width in (1280, 390):
        page.set_viewport_size({"width": width, "height": 900})
        page.screenshot(path=f"{folder}/{name}-{width}.png", full_page=True)
    page.set_viewport_size({"width": 1280, "height": 900})


def no_sideways_scroll(page) -> None:
    page.set_viewport_size({"width": 390, "height": 900})
    assert page.evaluate("document.documentElement.scrollWidth") <= 390
    page.set_viewport_size({"width": 1280, "height": 900})


def test_times_follow_the_browser_then_the_zone_kept_on_the_account(live_server, page):
    with live_server.app.app_context():
        add_editor("ed@example.org")
        sent = Issue(slug="winter", subject="Winter tip", body_md="x", status=IssueStatus.SENT)
        sent.sent_at = datetime(2099, 1, 15, 18, 8, tzinfo=UTC)
        db.session.add(sent)
        db.session.commit()
        db.session.remove()
    context = page.context.browser.new_context(timezone_id="Asia/Tokyo")
    tab = context.new_page()
    try:
        tab.goto(live_server.url + "/editor/login")
        tab.get_by_label("Email").fill("ed@example.org")
        tab.get_by_label("Password").fill(PASSWORD)
        tab.get_by_role("button", name="Log in").click()

        # Nothing chosen: the browser's zone (Tokyo, UTC+9) is used and offered to keep.
        sent_at = tab.locator("main time").first
        expect(sent_at).to_have_text("Fri 16 Jan 2099 03:08 Asia/Tokyo")
        expect(sent_at).to_have_attribute("title", "2099-01-15 18:08 UTC")
        expect(tab.locator("#zone-offer")).to_contain_text("your browser's zone, Asia/Tokyo")
        shoot(tab, "zone-offer")
        tab.get_by_role("button", name="Keep it on your account").click()
        expect(tab.get_by_text("Times are shown in Asia/Tokyo now")).to_be_visible()
        expect(tab.locator("#zone-offer")).to_have_count(0)
        expect(tab.locator("main time").first).to_have_attribute("data-zoned", "")

        # A zone that is not one: a clear error, the kept one stays.
        tab.goto(live_server.url + "/editor/settings")
        field = tab.get_by_label("Time zone")
        expect(field).to_have_value("Asia/Tokyo")
        field.fill("Europe/Atlantis")
        tab.get_by_role("button", name="Use this zone").click()
        expect(tab.locator("#zone-error")).to_have_text(
            "“Europe/Atlantis” is not a time zone: pick one from the list or type a name like "
            "Europe/Berlin or America/New_York."
        )
        shoot(tab, "zone-error")
        no_sideways_scroll(tab)
        tab.goto(live_server.url + "/editor/settings")
        expect(tab.locator("#zone-now")).to_have_text("Asia/Tokyo")

        # The short list is searchable; Berlin is kept though the browser is still in Tokyo.
        field = tab.get_by_label("Time zone")
        options = tab.locator("#zone-list option")
        assert 20 < options.count() < 60
        field.fill("Europe/Berlin")
        tab.get_by_role("button", name="Use this zone").click()
        expect(tab.get_by_text("Times are shown in Europe/Berlin now")).to_be_visible()
        shoot(tab, "settings-zone")
        no_sideways_scroll(tab)

        # Scheduled 19:08 in Berlin is confirmed as 19:08 in Berlin, 18:08 UTC on hover.
        tab.goto(live_server.url + "/editor/")
        tab.get_by_role("link", name="Write a new issue").click()
        tab.get_by_label("Subject").fill("Zoned")
        tab.get_by_label("Body (Markdown)").fill("Body")
        tab.get_by_role("button", name="Save draft").click()
        tab.get_by_text("Draft saved").wait_for()
        expect(tab.get_by_label("Time zone")).to_have_value("Europe/Berlin")
        tab.get_by_label("Or schedule for").fill("2099-01-15T19:08")
        tab.get_by_role("button", name="Schedule").click()
        expect(
            tab.get_by_text(
                "Scheduled for Thu 15 Jan 2099 19:08 Europe/Berlin (2099-01-15 18:08 UTC)."
            )
        ).to_be_visible()
        when = tab.locator("#status-when time")
        expect(when).to_have_text("Thu 15 Jan 2099 19:08 Europe/Berlin")
        expect(when).to_have_attribute("title", "2099-01-15 18:08 UTC")
        shoot(tab, "issue-scheduled")
        no_sideways_scroll(tab)
        tab.goto(live_server.url + "/editor/")
        expect(tab.locator("main time").first).to_contain_text("19:08 Europe/Berlin")
        shoot(tab, "issues-list")
    finally:
        context.close()
    assert live_server.errors == []
