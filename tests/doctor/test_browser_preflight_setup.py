"""In Chromium: the issue page answers at once, then shows the DNS verdict when the job has it;
a warning found after the page was drawn gives the send form its "send anyway" box."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from playwright.sync_api import expect

from newsletter.extensions import db
from newsletter.issues.actions import create_issue
from tests.helpers import override_settings
from tests.helpers.browser import live_server, page  # noqa: F401
from tests.helpers.editors import PASSWORD, add_editor

pytestmark = pytest.mark.browser


def test_the_dns_verdict_arrives_on_the_open_page(live_server, page, dns_server, zone):  # noqa: F811
    zone.txt("example.com", "v=spf1 ip4:127.0.0.1 -all")  # SPF fine; no DKIM key, no DMARC
    override_settings(
        live_server.app,
        dns_nameserver=("127.0.0.1", dns_server.port),
        mail_from="Example Tips <tips@example.com>",
    )
    with live_server.app.app_context():
        add_editor("ed@example.org")
        issue_id = create_issue("Tip", "Body").id
        db.session.remove()
    page.goto(live_server.url + "/editor/login")
    page.get_by_label("Email").fill("ed@example.org")
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()
    page.goto(f"{live_server.url}/editor/issues/{issue_id}")
    preflight = page.locator("#preflight")
    expect(preflight.get_by_text("DMARC: no DMARC record at _dmarc.example.com")).to_be_visible()
    expect(preflight.get_by_text("DKIM signing is off: Gmail and Yahoo want DKIM")).to_be_visible()
    expect(page.locator("#setup-check")).to_have_count(0)
    box = (
        page.locator("#send-now")
        .locator("xpath=ancestor::form")
        .get_by_label("Send anyway, despite the warnings")
    )
    expect(box).to_be_visible()
    folder = os.environ.get("SHOTS_DIR")
    if folder:  # for review, at both widths
        Path(folder).mkdir(parents=True, exist_ok=True)
        for width in (1280, 390):
            page.set_viewport_size({"width": width, "height": 900})
            page.screenshot(path=f"{folder}/preflight-dns-{width}.png", full_page=True)
        assert page.evaluate("document.documentElement.scrollWidth") <= 390
    assert live_server.errors == []
