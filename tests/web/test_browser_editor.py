"""In a real headless Chromium: an editor logs in, writes, previews, tests and sends an issue."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

from newsletter.extensions import db
from newsletter.models import Subscriber, SubscriberStatus
from tests.helpers import override_settings
from tests.helpers.editors import PASSWORD, add_editor

pytestmark = pytest.mark.browser

READERS = [f"reader{n}@example.com" for n in range(5)]


def _seed(app):
    with app.app_context():
        add_editor("ed@example.org")
        for email in READERS:
            db.session.add(Subscriber(email=email, status=SubscriberStatus.CONFIRMED))
        db.session.add(Subscriber(email="later@example.com", status=SubscriberStatus.PENDING))
        db.session.commit()
        db.session.remove()


def test_an_editor_writes_previews_tests_and_sends_an_issue(live_server, page, inbox):
    _seed(live_server.app)
    page.on("dialog", lambda dialog: dialog.accept())

    page.goto(live_server.url + "/editor/issues/new")
    assert "/editor/login" in page.url  # anonymous: sent to the login first
    page.get_by_label("Email").fill("ed@example.org")
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()
    page.get_by_role("heading", name="New issue").wait_for()

    page.get_by_label("Subject").fill("Use keyboard shortcuts")
    page.get_by_label("Body (Markdown)").fill(
        "Press **Ctrl+L** to jump to the address bar.\n\n<script>document.title='owned'</script>"
    )
    page.get_by_role("button", name="Save draft").click()
    page.get_by_text("Draft saved").wait_for()

    page.get_by_role("link", name="Preview the email").click()
    frame = page.frame_locator("iframe.mail")
    frame.get_by_role("heading", name="Use keyboard shortcuts").wait_for()
    assert frame.locator("strong", has_text="Ctrl+L").count() == 1
    assert frame.locator("script").count() == 0
    page.get_by_role("tab", name="Plain text").click()
    text = page.locator("pre.mail")
    text.wait_for()
    assert "Press **Ctrl+L**" not in text.inner_text()
    assert "Unsubscribe with one click:" in text.inner_text()
    assert page.title() != "owned"

    page.get_by_role("link", name="Back to the issue").click()
    page.get_by_label("To").fill("proof@example.net")
    page.get_by_role("button", name="Send test").click()
    page.get_by_text("A test copy went to proof@example.net").wait_for()
    (test_copy,) = inbox.wait_for(1, timeout=15)
    assert test_copy["To"] == "proof@example.net"
    assert "Use keyboard shortcuts" in test_copy["Subject"]

    # Slow enough (2 a second) that the bar is seen moving, not just drawn full.
    override_settings(live_server.app, send_rate=2)
    page.get_by_role("button", name="Send now to 5 subscribers").click()
    page.get_by_text("Sending to 5 subscribers now").wait_for()
    assert "batch" not in page.locator("main").inner_text()
    first = float(page.locator('#progress [data-k="percent"]').inner_text().rstrip("%"))
    assert first < 100
    assert page.locator("#issue-status").inner_text() == "Sending"
    assert "in the last minute" in page.locator("#live").inner_text()
    page.get_by_role("button", name="Pause").wait_for()
    page.evaluate("window.sameDocument = true")
    # The moment the last copy is accounted for, the page says so: no reload.
    page.locator("#send-summary").wait_for(state="visible", timeout=20_000)
    assert page.locator("#issue-status").inner_text() == "Sent"
    assert page.locator('#send-summary [data-s="sent"]').inner_text() == "5"
    assert page.locator('#send-summary [data-s="failed"]').inner_text() == "0"
    assert page.locator('#send-summary [data-s="complaints"]').inner_text() == "0"
    assert page.locator('#send-summary [data-s="unsubscribed"]').inner_text() == "0"
    assert "per second on average over the whole send" in page.locator("#send-summary").inner_text()
    assert page.locator("#live").is_hidden()
    assert page.get_by_role("button", name="Pause").count() == 0
    assert page.get_by_role("button", name=re.compile("Cancel")).count() == 0
    assert page.get_by_text("0.00% of 0 delivered").count() == 0
    page.get_by_role("link", name="Stats").first.wait_for()
    page.get_by_role("link", name="The issue in the public archive").wait_for()
    assert page.evaluate("window.sameDocument === true")  # updated live, not by a reload
    assert "finished" in page.locator("#status-when").inner_text()
    # A reload says the same, once: no "sent sent".
    page.reload()
    assert page.locator("#issue-status").inner_text() == "Sent"
    assert page.locator("#send-summary").is_visible()
    assert "sent sent" not in page.locator("main").inner_text().lower()
    assert page.get_by_role("button", name="Pause").count() == 0

    inbox.wait_for(6, timeout=15)
    delivered = sorted(rcpts[0] for _f, rcpts in inbox.envelopes[1:])
    assert delivered == READERS
    assert live_server.errors == []


def test_the_schedule_form_defaults_to_the_browsers_time_zone(live_server, page):
    _seed(live_server.app)
    context = page.context.browser.new_context(timezone_id="America/Chicago")
    tab = context.new_page()
    try:
        tab.goto(live_server.url + "/editor/login")
        tab.get_by_label("Email").fill("ed@example.org")
        tab.get_by_label("Password").fill(PASSWORD)
        tab.get_by_role("button", name="Log in").click()
        tab.get_by_role("link", name="Write a new issue").click()
        tab.get_by_label("Subject").fill("Zoned")
        tab.get_by_label("Body (Markdown)").fill("Body")
        tab.get_by_role("button", name="Save draft").click()
        tab.get_by_text("Draft saved").wait_for()
        assert tab.get_by_label("Time zone").input_value() == "America/Chicago"
        tab.get_by_label("Or schedule for").fill("2099-01-15T09:00")
        tab.get_by_role("button", name="Schedule").click()
        # 09:00 in Chicago (CST, UTC-6) is 15:00 UTC.
        tab.get_by_text(
            "Scheduled for Thu 15 Jan 2099 09:00 America/Chicago (2099-01-15 15:00 UTC)."
        ).wait_for()
        # The page shows the time in the browser's zone, with UTC on hover.
        shown = tab.locator("#status-when time")
        expect(shown).to_have_text("Thu 15 Jan 2099 09:00 America/Chicago")
        assert shown.get_attribute("title") == "2099-01-15 15:00 UTC"
    finally:
        context.close()
