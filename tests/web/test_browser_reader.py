"""In a real headless Chromium: subscribe, confirm from the mail, unsubscribe from the welcome."""

from __future__ import annotations

import pytest

from newsletter.extensions import db
from newsletter.models import Subscriber, SubscriberStatus
from tests.helpers import links

pytestmark = pytest.mark.browser


def _status(app, email):
    with app.app_context():
        sub = db.session.query(Subscriber).filter_by(email=email).one()
        status = sub.status
        db.session.remove()
        return status


def _link(msg, base, prefix):
    found = [u for u in links(msg) if u.startswith(base + prefix)]
    assert found, f"no {prefix} link in {msg['Subject']!r}"
    return found[0]


def test_a_reader_subscribes_confirms_and_unsubscribes_in_the_browser(live_server, page, inbox):
    page.goto(live_server.url + "/")
    page.get_by_label("Your email address").fill("Reader@Example.com")
    page.get_by_label("Your name").fill("Rae")
    page.get_by_role("button", name="Subscribe").click()
    page.get_by_role("heading", name="Check your inbox").wait_for()

    (confirmation,) = inbox.wait_for(1, timeout=15)
    # The browser that signed up: the link in the mail confirms at once.
    page.goto(_link(confirmation, live_server.url, "/confirm/"))
    page.get_by_role("heading", name="You're subscribed. Welcome!").wait_for()
    assert "tips@example.org" in page.content()
    assert _status(live_server.app, "reader@example.com") is SubscriberStatus.CONFIRMED

    welcome = inbox.wait_for(2, timeout=15)[1]
    page.goto(_link(welcome, live_server.url, "/unsubscribe/"))
    page.get_by_role("button", name="Unsubscribe").click()
    page.get_by_role("heading", name="You're unsubscribed").wait_for()
    assert _status(live_server.app, "reader@example.com") is SubscriberStatus.UNSUBSCRIBED
    assert page.get_by_role("button", name="Subscribe again").is_visible()
    assert live_server.errors == []
