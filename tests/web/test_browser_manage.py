"""In a real headless Chromium: the reader's own page end to end, at desktop and phone widths."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest

from newsletter.extensions import db
from newsletter.models import Subscriber, SubscriberStatus
from newsletter.services import tokens
from tests.helpers import links

pytestmark = pytest.mark.browser

SHOTS = Path(os.environ.get("MANAGE_SHOTS", "/tmp/shots/manage"))


def _reader(app: Any, email: str, name: str = "") -> tuple[int, str, str]:
    with app.app_context():
        sub = Subscriber(email=email, name=name, status=SubscriberStatus.CONFIRMED)
        db.session.add(sub)
        db.session.commit()
        made = (
            sub.id,
            tokens().manage_token(sub.id, sub.created_at, sub.email),
            tokens().unsubscribe_token(sub.id),
        )
        db.session.remove()
        return made


def _row(app: Any, subscriber_id: int) -> Subscriber | None:
    with app.app_context():
        sub = db.session.get(Subscriber, subscriber_id)
        if sub is not None:
            db.session.expunge(sub)
        db.session.remove()
        return sub


def _link(msg: Any, base: str, prefix: str) -> str:
    found = [u for u in links(msg) if u.startswith(base + prefix)]
    assert found, f"no {prefix} link in {msg['Subject']!r}"
    return found[0]


def _look(page: Any, name: str) -> None:
    """Screenshot the page at desktop and phone width; it must never scroll sideways."""
    SHOTS.mkdir(parents=True, exist_ok=True)
    for width, height in ((1280, 900), (390, 844)):
        page.set_viewport_size({"width": width, "height": height})
        page.screenshot(path=str(SHOTS / f"{name}-{width}.png"), full_page=True)
        assert page.evaluate("document.documentElement.scrollWidth") <= width, (name, width)
    page.set_viewport_size({"width": 1280, "height": 900})


def test_a_reader_manages_everything_from_their_own_page(live_server, page, inbox, tmp_path):
    base = live_server.url
    sid, manage, unsubscribe = _reader(
        live_server.app, "rae.withaverylongaddressname@example.com", "Rae"
    )
    page.goto(f"{base}/manage/{manage}")
    page.get_by_role("heading", name="Your subscription").wait_for()
    _look(page, "page")

    # Rename.
    page.get_by_label("Name").fill("Rae Lee")
    page.get_by_role("button", name="Save name").click()
    page.get_by_text("Your name is saved.").wait_for()
    assert _row(live_server.app, sid).name == "Rae Lee"

    # Pause for three weeks, then resume early.
    page.get_by_label("Pause for").select_option("3")
    page.get_by_role("button", name="Pause", exact=True).click()
    page.get_by_text("Paused. The tips start again on").wait_for()
    assert _row(live_server.app, sid).paused_until is not None
    _look(page, "page-paused")
    page.get_by_role("button", name="Resume now").click()
    page.get_by_text("Welcome back").wait_for()
    assert _row(live_server.app, sid).paused_until is None

    # Data, a new address and erasing: first a link mailed to the address.
    assert page.get_by_role("button", name="Download my data (JSON)").count() == 0
    page.locator("#data").get_by_role("button", name="Email me the link").click()
    page.get_by_text("We sent a link to your address.").wait_for()
    _look(page, "page-link-sent")
    (access_mail,) = inbox.wait_for(1, timeout=15)
    assert inbox.envelopes[0][1] == ["rae.withaverylongaddressname@example.com"]
    page.goto(_link(access_mail, base, "/manage/"))
    page.get_by_text("You opened the link we emailed you").wait_for()
    _look(page, "page-fresh")

    # A bad address is refused beside its field, and nothing changes.
    page.get_by_label("New email address").fill("rae.example.net")
    page.get_by_role("button", name="Change address").click()
    page.get_by_text("An email address needs an @").wait_for()
    _look(page, "page-error")

    # Download everything as JSON.
    with page.expect_download() as caught:
        page.get_by_role("button", name="Download my data (JSON)").click()
    saved = tmp_path / "data.json"
    caught.value.save_as(saved)
    data = json.loads(saved.read_text(encoding="utf-8"))
    assert data["profile"]["name"] == "Rae Lee"
    assert [h["kind"] for h in data["history"]] == ["renamed", "paused", "resumed"]

    # Change the address: it takes effect from the mail's link, and the old address is told.
    page.get_by_label("New email address").fill("rae@example.net")
    page.get_by_role("button", name="Change address").click()
    page.get_by_role("heading", name="Check the new inbox").wait_for()
    _look(page, "address-asked")
    link_mail = inbox.wait_for(2, timeout=15)[1]
    assert inbox.envelopes[1][1] == ["rae@example.net"]
    page.goto(_link(link_mail, base, "/manage/address/"))
    page.get_by_role("heading", name="Use this address?").wait_for()
    _look(page, "address-confirm")
    assert _row(live_server.app, sid).email.startswith("rae.withaverylong")
    page.get_by_role("button", name="Use this address").click()
    page.get_by_role("heading", name="Your address is changed").wait_for()
    _look(page, "address-changed")
    assert _row(live_server.app, sid).email == "rae@example.net"
    notice = inbox.wait_for(3, timeout=15)[2]
    assert inbox.envelopes[2][1] == ["rae.withaverylongaddressname@example.com"]
    assert "rae@example.net" in notice.get_body(preferencelist=("plain",)).get_content()

    # The links mailed to the old address show nothing of the new one any more.
    for old in (f"{base}/manage/{manage}", _link(access_mail, base, "/manage/")):
        page.goto(old)
        page.get_by_role("heading", name="This link no longer works").wait_for()
        assert "rae@example.net" not in page.content()
    _look(page, "old-link")

    # The unsubscribe link still unsubscribes, and leads nowhere else.
    page.goto(f"{base}/unsubscribe/{unsubscribe}")
    page.get_by_role("heading", name="Unsubscribe from Tip of the Week?").wait_for()
    _look(page, "unsubscribe")
    assert "rae@example.net" not in page.content() and "/manage/" not in page.content()

    # Erase, from a link mailed to the new address: a wrong address is refused, the right one
    # erases.
    page.goto(f"{base}/manage/{_page_token(live_server.app, sid)}")
    page.locator("#erase").get_by_role("button", name="Email me the link").click()
    page.get_by_text("We sent a link to your address.").wait_for()
    erase_mail = inbox.wait_for(4, timeout=15)[3]
    assert inbox.envelopes[3][1] == ["rae@example.net"]
    page.goto(_link(erase_mail, base, "/manage/"))
    page.get_by_label("Type your email address to confirm").fill("someone@example.net")
    page.get_by_role("button", name="Erase me").click()
    page.get_by_text("That is not the address of this subscription.").wait_for()
    assert _row(live_server.app, sid) is not None
    page.get_by_label("Type your email address to confirm").fill("Rae@Example.net")
    page.get_by_role("button", name="Erase me").click()
    page.get_by_role("heading", name="You're erased").wait_for()
    _look(page, "erased")
    assert _row(live_server.app, sid) is None
    page.goto(f"{base}/manage/{manage}")
    page.get_by_role("heading", name="We don't know this link").wait_for()
    assert live_server.errors == []


def _page_token(app: Any, subscriber_id: int) -> str:
    """The page link a tip mailed to the reader's current address holds."""
    with app.app_context():
        sub = db.session.get(Subscriber, subscriber_id)
        assert sub is not None
        token = tokens().manage_token(sub.id, sub.created_at, sub.email)
        db.session.remove()
        return token


def test_leaving_with_a_reason_in_the_browser(live_server, page, inbox):
    sid, _manage, unsubscribe = _reader(live_server.app, "sam@example.com")
    page.goto(f"{live_server.url}/unsubscribe/{unsubscribe}")
    page.get_by_label("Not relevant to me").check()
    page.get_by_role("button", name="Unsubscribe").click()
    page.get_by_role("heading", name="You're unsubscribed").wait_for()
    _look(page, "unsubscribed")
    assert _row(live_server.app, sid).status is SubscriberStatus.UNSUBSCRIBED
    # Their own page now offers to come back, and no pause.
    page.goto(f"{live_server.url}/manage/{_manage}")
    page.get_by_role("button", name="Subscribe again").wait_for()
    assert page.get_by_text("Pausing is for readers who are subscribed.").is_visible()
    _look(page, "page-unsubscribed")
    assert live_server.errors == []
