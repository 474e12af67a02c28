"""In Chromium: an editor brands the newsletter at /editor/settings and sees it at once on the
front page; the next mail delivered carries the same name, footer and address."""

from __future__ import annotations

import io
import os
from pathlib import Path

import pytest
from PIL import Image

from newsletter.extensions import db
from newsletter.issues.actions import create_issue
from newsletter.models import Subscriber, SubscriberStatus
from newsletter.tasks.dispatch import send_issue
from tests.helpers import html_part, text_part
from tests.helpers.editors import PASSWORD, add_editor

pytestmark = pytest.mark.browser


def shoot(page, name: str) -> None:
    """Save the page at 1280 and 390 px wide when SHOTS_DIR names a folder (for review)."""
    folder = os.environ.get("SHOTS_DIR")
    if not folder:
        return
    Path(folder).mkdir(parents=True, exist_ok=True)
    size = page.viewport_size or {"width": 1280, "height": 800}
    for width in (1280, 390):
        page.set_viewport_size({"width": width, "height": 900})
        page.screenshot(path=f"{folder}/{name}-{width}.png", full_page=True)
    page.set_viewport_size(size)


def log_in(page, url: str) -> None:
    page.goto(url + "/editor/login")
    page.get_by_label("Email").fill("ed@example.org")
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()
    page.get_by_role("heading", name="Issues").first.wait_for()


def test_an_editor_brands_the_newsletter_and_readers_see_it(live_server, page, inbox, tmp_path):
    with live_server.app.app_context():
        add_editor("ed@example.org")
        db.session.add(Subscriber(email="reader@example.com", status=SubscriberStatus.CONFIRMED))
        db.session.commit()
        db.session.remove()
    logo = tmp_path / "logo.png"
    Image.new("RGB", (900, 300), (11, 110, 79)).save(logo)

    log_in(page, live_server.url)
    page.get_by_role("link", name="Settings").click()
    page.get_by_role("heading", name="Settings: your newsletter's look").wait_for()
    page.get_by_label("Newsletter name").fill("Shell Notes")
    page.get_by_label("Pitch").fill("One shell trick every Monday")
    page.get_by_label("Front page text").fill("Short tips for the terminal.")
    page.get_by_label("Logo", exact=True).set_input_files(str(logo))
    page.locator("#accent").fill("#0b6e4f")
    page.get_by_label("Footer text").fill("Made with care in Leipzig.")
    page.get_by_label("Postal address").fill("Hauptstr. 5, 04109 Leipzig")
    page.get_by_role("button", name="Save").click()
    page.get_by_text("Saved: every page and the next mail use it now.").wait_for()
    shoot(page, "settings")

    # A bad colour is refused on the page, and what was saved stays.
    page.locator("#accent").fill("#fafafa")
    page.get_by_role("button", name="Save").click()
    page.get_by_role("alert").get_by_text("is too light").wait_for()
    shoot(page, "settings-error")

    page.goto(live_server.url + "/")
    assert page.get_by_role("heading", level=1).inner_text() == "Shell Notes"
    page.get_by_text("One shell trick every Monday").wait_for()
    page.get_by_text("Short tips for the terminal.").wait_for()
    footer = page.locator("footer.site").inner_text()
    assert "Made with care in Leipzig." in footer and "Hauptstr. 5, 04109 Leipzig" in footer
    loaded = page.locator("#site-logo").evaluate("img => img.complete && img.naturalWidth")
    assert loaded == 600
    button = page.get_by_role("button", name="Subscribe")
    assert button.evaluate("b => getComputedStyle(b).backgroundColor") == "rgb(11, 110, 79)"
    icon = page.request.get(live_server.url + "/favicon.ico")
    assert icon.ok and Image.open(io.BytesIO(icon.body())).format == "ICO"
    shoot(page, "front")

    with live_server.app.app_context():
        send_issue(create_issue("A trick", "Use `ctrl-r`.").id)
        db.session.remove()
    (msg,) = inbox.wait_for(1, timeout=30)
    for part in (text_part(msg), html_part(msg)):
        assert "Shell Notes" in part
        assert "Made with care in Leipzig." in part and "Hauptstr. 5, 04109 Leipzig" in part
    assert f"{live_server.url}/branding/logo-" in html_part(msg)
