"""In Chromium: the email beside the Markdown, rendered by the server as the editor types;
drafts saved as they go (reload, and the text is there)."""

from __future__ import annotations

import pytest

from newsletter.extensions import db
from newsletter.issues.actions import create_issue
from newsletter.models import Issue
from tests.helpers.editors import PASSWORD, add_editor
from tests.web.test_browser_branding import shoot

pytestmark = pytest.mark.browser


def _log_in(page, url: str) -> None:
    page.goto(url + "/editor/login")
    page.get_by_label("Email").fill("ed@example.org")
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()
    page.wait_for_url("**/editor/")


def test_the_preview_follows_the_typing_and_a_new_draft_survives_a_reload(live_server, page):
    with live_server.app.app_context():
        add_editor("ed@example.org")
        db.session.remove()
    _log_in(page, live_server.url)
    page.goto(live_server.url + "/editor/issues/new")
    mail = page.frame_locator("#live-mail")
    mail.get_by_text("View it in your browser").wait_for()  # rendered before any typing
    page.get_by_label("Subject").fill("Use rg")
    page.get_by_label("Preheader").fill("Faster than grep")
    page.get_by_label("Body (Markdown)").press_sequentially("Try **ripgrep** today.", delay=5)
    mail.locator("strong", has_text="ripgrep").wait_for()
    mail.get_by_role("heading", name="Use rg").wait_for()
    assert "Faster than grep" in mail.locator("div.preheader").inner_text()
    page.get_by_text("Gmail clips past 102 KB").wait_for()
    page.get_by_role("button", name="Phone").click()
    assert page.locator("#live-mail").evaluate("f => f.getBoundingClientRect().width") == 375
    page.get_by_text("Kept in this browser until you save the draft.").wait_for()
    shoot(page, "writing-new")

    page.reload()  # a closed tab or a reload loses nothing
    assert page.get_by_label("Subject").input_value() == "Use rg"
    assert page.get_by_label("Body (Markdown)").input_value() == "Try **ripgrep** today."
    page.get_by_text("Your unsaved draft from").wait_for()
    page.get_by_role("button", name="Save draft").click()
    page.get_by_text("Draft saved").wait_for()
    page.goto(live_server.url + "/editor/issues/new")
    assert page.get_by_label("Subject").input_value() == ""  # saved: not restored twice


def test_an_existing_draft_is_saved_as_it_is_typed(live_server, page):
    with live_server.app.app_context():
        add_editor("ed@example.org")
        issue_id = create_issue("Draft", "First words.").id
        db.session.remove()
    _log_in(page, live_server.url)
    page.goto(live_server.url + f"/editor/issues/{issue_id}")
    body = page.get_by_label("Body (Markdown)")
    body.fill("First words. And a second thought.")
    page.get_by_text("Saved automatically at").wait_for()
    page.frame_locator("#live-mail").get_by_text("And a second thought.").wait_for()
    shoot(page, "writing-draft")
    page.set_viewport_size({"width": 390, "height": 844})  # on a phone: below the text
    page.frame_locator("#live-mail").get_by_text("And a second thought.").wait_for()
    assert page.evaluate("document.documentElement.scrollWidth") <= 390
    page.set_viewport_size({"width": 1280, "height": 900})
    page.reload()
    assert body.input_value() == "First words. And a second thought."
    page.get_by_label("Subject").fill("")
    page.get_by_text("Not saved yet: The subject is empty.").wait_for()
    with live_server.app.app_context():
        assert db.session.get(Issue, issue_id).subject == "Draft"
        db.session.remove()
