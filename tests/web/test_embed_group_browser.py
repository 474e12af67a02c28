"""In real Chromium: the editor makes a group's form, a blog carries it, the reader gets the tag."""

from __future__ import annotations

from typing import Any

import pytest

from newsletter.extensions import db
from newsletter.models import Subscriber, SubscriberStatus
from newsletter.subscribers.tags import add_tags, tag_names
from tests.helpers import override_settings
from tests.helpers.browser import live_server, page  # noqa: F401
from tests.helpers.editors import PASSWORD, add_editor
from tests.web.test_browser_signup import _Blog, _shots

pytestmark = pytest.mark.browser


def _tags_of(app: Any, email: str) -> list[str] | None:
    with app.app_context():
        sub = db.session.query(Subscriber).filter_by(email=email).one_or_none()
        found = None if sub is None else tag_names(db.session(), [sub.id])[sub.id]
        db.session.remove()
        return found


def test_a_group_form_pasted_on_a_workshop_page_tags_who_signs_up(live_server, page):  # noqa: F811
    base, app = live_server.url, live_server.app
    with app.app_context():
        add_editor("ed@example.org")
        first = Subscriber(email="first@example.com", status=SubscriberStatus.CONFIRMED)
        db.session.add(first)
        db.session.flush()
        add_tags(db.session(), first.id, ["Workshop 9"], by="test")
        db.session.commit()
        db.session.remove()
    page.goto(base + "/editor/login")
    page.get_by_label("Email").fill("ed@example.org")
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()
    page.goto(base + "/editor/embed")
    page.get_by_label("Sign-ups get the tag").select_option("Workshop 9")
    page.get_by_role("button", name="Make the form").click()
    page.get_by_text("Whoever signs up through this form gets the tag").wait_for()
    snippet = page.locator("#snippet").input_value()
    assert 'type="hidden" name="group"' in snippet and "Workshop 9" not in snippet
    _shots(page, "editor-embed-group")

    blog = _Blog(f"<!doctype html><html><body><h1>Workshop 9</h1>{snippet}</body></html>")
    try:
        override_settings(app, embed_origins=(blog.origin,))
        page.goto(blog.origin + "/")
        page.get_by_label("Your email address").fill("ann@example.com")
        page.get_by_role("button", name="Subscribe").click()
        page.get_by_role("heading", name="Check your inbox").wait_for()
        assert _tags_of(app, "ann@example.com") == ["Workshop 9"]
    finally:
        blog.close()
