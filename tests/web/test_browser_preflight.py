"""In Chromium: the issue page's preflight above the send buttons, its link check filled in
when the job answers, merge fields shown with the editor's name in the live preview, and an
image uploaded into the body."""

from __future__ import annotations

import pytest
from PIL import Image

from newsletter.extensions import db
from newsletter.issues.actions import create_issue
from newsletter.models import Subscriber, SubscriberStatus
from tests.helpers.editors import add_editor
from tests.web.test_browser_branding import log_in, shoot

pytestmark = pytest.mark.browser


def _no_sideways_scroll(page) -> None:
    page.set_viewport_size({"width": 390, "height": 900})
    assert page.evaluate("document.documentElement.scrollWidth") <= 390
    page.set_viewport_size({"width": 1280, "height": 900})


def test_preflight_and_the_link_check_appear_without_blocking_the_page(live_server, page):
    url = live_server.url
    with live_server.app.app_context():
        add_editor("ed@example.org")
        db.session.add(
            Subscriber(email="ed@example.org", name="Edna", status=SubscriberStatus.CONFIRMED)
        )
        db.session.commit()
        issue = create_issue(
            "Hi {{ name | default('there') }}: this week's tip",
            "Hi {{ name | default('there') }},\n\nTODO: finish.\n\n![](https://example.org/a.png)"
            f"\n\n[home]({url}/) and [a long broken link]({url}/no-such-page-" + "x" * 80 + ")",
        )
        issue_id = issue.id
        db.session.remove()
    log_in(page, url)
    page.goto(f"{url}/editor/issues/{issue_id}")
    card = page.locator("#preflight")
    card.get_by_text("Placeholder text left in: TODO.").wait_for()
    card.get_by_text("1 image(s) without alt text").wait_for()
    # The job answers in the background; the page fills it in when it does.
    card.locator("li.link-broken", has_text="no-such-page").wait_for(timeout=20_000)
    assert "(404)" in card.locator("li.link-broken").inner_text()
    assert card.bounding_box()["y"] < page.locator("#send-now").bounding_box()["y"]
    mail = page.frame_locator("#live-mail")
    mail.get_by_text("Hi Edna,").wait_for()
    shoot(page, "issue-preflight")
    _no_sideways_scroll(page)
    page.once("dialog", lambda d: d.accept())
    page.locator("#send-now").click()
    page.get_by_text("Preflight found something to look at").wait_for()
    shoot(page, "issue-preflight-refused")
    _no_sideways_scroll(page)


def test_an_image_uploads_into_the_body_with_its_alt_text(live_server, page, tmp_path):
    url = live_server.url
    with live_server.app.app_context():
        add_editor("ed@example.org")
        issue_id = create_issue("Pictures", "Look at this:").id
        db.session.remove()
    picture = tmp_path / "chart.png"
    Image.new("RGB", (2400, 800), (20, 120, 200)).save(picture)
    fake = tmp_path / "notes.png"
    fake.write_bytes(b"not a picture at all")
    log_in(page, url)
    page.goto(f"{url}/editor/issues/{issue_id}")
    page.locator("#image-file").set_input_files(str(picture))
    page.get_by_role("button", name="Upload and insert").click()
    page.get_by_text("Describe the image in a few words").wait_for()  # alt text is required
    page.get_by_label("Describe it (alt text, required)").fill("Weekly chart")
    page.get_by_role("button", name="Upload and insert").click()
    page.get_by_text("Inserted.").wait_for()
    body = page.get_by_label("Body (Markdown)").input_value()
    assert f"![Weekly chart]({url}/media/issue-images/" in body
    image = page.frame_locator("#live-mail").locator("img[alt='Weekly chart']")
    image.wait_for()
    assert image.evaluate("i => i.complete && i.naturalWidth") == 1200  # loaded, resized
    page.locator("#image-file").set_input_files(str(fake))
    page.get_by_role("button", name="Upload and insert").click()
    page.get_by_text("not an image we can read").wait_for()
    shoot(page, "issue-image-upload")
    _no_sideways_scroll(page)
