"""In real headless Chromium: one-click confirm, the proof of work, the form embedded on a blog."""

from __future__ import annotations

import os
import re
import threading
from http.server import BaseHTTPRequestHandler
from typing import Any

import pytest

from newsletter.extensions import db
from newsletter.models import Subscriber, SubscriberStatus
from tests.helpers import free_port, links, override_settings
from tests.helpers.browser import live_server, other_page, page  # noqa: F401
from tests.helpers.editors import PASSWORD, add_editor
from tests.helpers.receivers import QuietHTTPServer

pytestmark = pytest.mark.browser
S = SubscriberStatus


def _status(app: Any, email: str) -> SubscriberStatus | None:
    with app.app_context():
        sub = db.session.query(Subscriber).filter_by(email=email).one_or_none()
        status = None if sub is None else sub.status
        db.session.remove()
        return status


def _confirm_link(msg: Any, base: str) -> str:
    found = [u for u in links(msg) if u.startswith(base + "/confirm/")]
    assert found, f"no confirm link in {msg['Subject']!r}"
    return found[0]


def _shots(tab: Any, name: str) -> None:
    """Save the page at desktop and phone width when SCREENSHOTS names a folder; never wider."""
    folder = os.environ.get("SCREENSHOTS")
    for width in (1280, 390):
        tab.set_viewport_size({"width": width, "height": 900})
        if folder:
            tab.screenshot(path=f"{folder}/{name}-{width}.png", full_page=True)
        overflow = tab.evaluate("document.documentElement.scrollWidth > window.innerWidth")
        assert not overflow, f"{name} scrolls sideways at {width} px"
    tab.set_viewport_size({"width": 1280, "height": 900})


def _sign_up(tab: Any, base: str, email: str, name: str = "") -> None:
    tab.goto(base + "/")
    tab.get_by_label("Your email address").fill(email)
    if name:
        tab.get_by_label("Your name").fill(name)
    tab.get_by_role("button", name="Subscribe").click()


def test_the_link_confirms_in_one_click_where_they_signed_up_and_asks_elsewhere(
    live_server,  # noqa: F811
    page,  # noqa: F811
    other_page,  # noqa: F811
    inbox,
):
    base = live_server.url
    _sign_up(page, base, "Reader.With.A.Really.Long.Address+newsletter@example.com", "Rae")
    page.get_by_role("heading", name="Check your inbox").wait_for()
    assert page.url == base + "/check-inbox"
    assert "reader.with.a.really.long.address+newsletter@example.com" in page.content()
    _shots(page, "signup-check-inbox")
    page.reload()  # a reload shows the page again, it does not send the form again
    page.get_by_role("heading", name="Check your inbox").wait_for()

    (confirmation,) = inbox.wait_for(1, timeout=15)
    link = _confirm_link(confirmation, base)
    email = "reader.with.a.really.long.address+newsletter@example.com"

    # On the phone (or in a mail scanner) the link shows one button and changes nothing.
    other_page.goto(link)
    other_page.get_by_role("button", name="Confirm my subscription").wait_for()
    assert _status(live_server.app, email) is S.PENDING
    _shots(other_page, "signup-confirm-button")

    # In the browser that signed up, the click in the mail is all it takes.
    page.goto(link)
    page.get_by_role("heading", name="You're subscribed. Welcome!").wait_for()
    assert _status(live_server.app, email) is S.CONFIRMED
    assert page.get_by_role("link", name="Your page").get_attribute("href").startswith("/manage/")
    _shots(page, "signup-welcome")
    assert live_server.errors == []


def test_past_the_limit_the_page_solves_a_proof_of_work_and_signs_up(
    live_server,  # noqa: F811
    page,  # noqa: F811
    inbox,
):
    # One sign-up per ten minutes from this address.
    live = live_server
    override_settings(live.app, subscribe_rate_limit=(1, 600))
    _sign_up(page, live.url, "first@example.com")
    page.get_by_role("heading", name="Check your inbox").wait_for()

    posts: list[str] = []
    page.on(
        "request",
        lambda r: posts.append(r.post_data or "") if r.url.endswith("/subscribe") else None,
    )
    _sign_up(page, live.url, "second@example.com", "Sam")
    # The challenge page's own script solves the puzzle and sends the form on, by itself.
    page.get_by_role("heading", name="Check your inbox").wait_for(timeout=30_000)
    assert len(posts) == 2  # the form, then the challenge page's form with its solution
    assert "altcha=" not in posts[0] and re.search(r"altcha=[A-Za-z0-9%]{40,}", posts[1])
    assert "second@example.com" in page.content()
    assert _status(live.app, "second@example.com") is S.PENDING
    mails = inbox.wait_for(2, timeout=15)
    assert sorted(m["To"] for m in mails) == ["first@example.com", "second@example.com"]
    assert live.errors == []


def test_the_challenge_page_at_both_widths(
    live_server,  # noqa: F811
    page,  # noqa: F811
):
    live = live_server
    override_settings(live.app, subscribe_rate_limit=(1, 600))
    _sign_up(page, live.url, "one@example.com")
    page.get_by_role("heading", name="Check your inbox").wait_for()
    page.route("**/proof-of-work.js", lambda route: route.abort())  # hold it still to look
    _sign_up(page, live.url, "two@example.com")
    page.get_by_role("heading", name="One moment").wait_for()
    _shots(page, "signup-challenge")


class _Blog:
    """Another website on 127.0.0.1 (another port: another origin) serving one page."""

    def __init__(self, body: str) -> None:
        content = body.encode()

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 - the http.server API
                self.send_response(200)
                self.send_header("Content-Type", "text/html; charset=utf-8")
                self.send_header("Content-Length", str(len(content)))
                self.end_headers()
                self.wfile.write(content)

            def log_message(self, *args: Any) -> None:
                pass

        self.port = free_port()
        self.origin = f"http://127.0.0.1:{self.port}"
        self.server = QuietHTTPServer(("127.0.0.1", self.port), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def _snippet_from_the_editor(tab: Any, base: str, app: Any) -> str:
    with app.app_context():
        add_editor("ed@example.org")
        db.session.remove()
    tab.goto(base + "/editor/login")
    tab.get_by_label("Email").fill("ed@example.org")
    tab.get_by_label("Password").fill(PASSWORD)
    tab.get_by_role("button", name="Log in").click()
    tab.goto(base + "/editor/embed")
    # Shown live: the button text typed changes the snippet and the preview at once.
    tab.get_by_label("Button text").fill("Send me the tips")
    tab.locator("#preview").get_by_role("button", name="Send me the tips").wait_for()
    snippet = tab.locator("#snippet").input_value()
    assert "Send me the tips" in snippet and base + "/embed/subscribe" in snippet
    assert "<script" not in snippet and 'name="website"' in snippet  # plain HTML, a honeypot
    _shots(tab, "editor-embed")
    return snippet


def test_the_snippet_pasted_into_another_site_signs_people_up(
    live_server,  # noqa: F811
    page,  # noqa: F811
    other_page,  # noqa: F811
    inbox,
):
    base, app = live_server.url, live_server.app
    snippet = _snippet_from_the_editor(other_page, base, app)
    blog = _Blog(
        "<!doctype html><html><head><title>My blog</title></head><body>"
        "<h1>A post about shell tricks</h1><p>Like this? Get a tip every week:</p>"
        f"{snippet}</body></html>"
    )
    try:
        override_settings(app, embed_origins=(blog.origin,))
        page.goto(blog.origin + "/")
        page.get_by_label("Your email address").fill("fan@example.com")
        page.get_by_label("Your name").fill("Fan")
        page.get_by_role("button", name="Send me the tips").click()
        page.get_by_role("heading", name="Check your inbox").wait_for()
        assert page.url == base + "/check-inbox"
        assert "fan@example.com" in page.content()
        (confirmation,) = inbox.wait_for(1, timeout=15)
        page.goto(_confirm_link(confirmation, base))  # the browser that signed up on the blog
        page.get_by_role("heading", name="You're subscribed. Welcome!").wait_for()
        assert _status(app, "fan@example.com") is S.CONFIRMED

        # The blog's own script may call the API, because EMBED_ORIGINS names it (CORS)...
        page.goto(blog.origin + "/")
        answer = page.evaluate(
            """async (url) => {
                const r = await fetch(url, {method: "POST",
                    headers: {"Content-Type": "application/json"},
                    body: JSON.stringify({email: "script@example.com"})});
                return [r.status, (await r.json()).status];
            }""",
            base + "/api/v1/subscribe",
        )
        assert answer == [202, "accepted"]
        # ...and once it does not, the browser keeps the answer from the page. (Another
        # browser: this one may remember the first answer to its preflight for a while.)
        override_settings(app, embed_origins=("https://elsewhere.example",))
        other_page.goto(blog.origin + "/")
        refused = other_page.evaluate(
            """async (url) => {
                try {
                    await fetch(url, {method: "POST",
                        headers: {"Content-Type": "application/json"},
                        body: JSON.stringify({email: "blocked@example.com"})});
                    return "read";
                } catch (e) { return "blocked"; }
            }""",
            base + "/api/v1/subscribe",
        )
        assert refused == "blocked"
        assert _status(app, "blocked@example.com") is None  # the preflight stopped it
        # And the form itself is refused with a clear page.
        page.get_by_label("Your email address").fill("late@example.com")
        page.get_by_role("button", name="Send me the tips").click()
        page.get_by_role("heading", name="Please sign up here").wait_for()
        assert _status(app, "late@example.com") is None
    finally:
        blog.close()
    assert live_server.errors == []
