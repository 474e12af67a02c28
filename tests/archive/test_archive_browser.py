"""In Chromium: an editor brings the back catalogue; a reader browses, searches, subscribes."""

from __future__ import annotations

import os
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from newsletter.archive.poll import poll_feed
from newsletter.archive.sources import fetching_for
from newsletter.config import Feed
from newsletter.extensions import db, settings
from newsletter.models import utcnow
from tests.archive.exports import Post, medium_export, rss, weekly
from tests.archive.test_archive_pages import START, add_tips
from tests.helpers import override_settings
from tests.helpers.browser import live_server, page
from tests.helpers.editors import PASSWORD, add_editor

__all__ = ["live_server", "page"]  # fixtures

pytestmark = pytest.mark.browser
# Set to a folder to keep the screenshots (the team looks at them for every page it changes).
SHOTS = os.environ.get("ARCHIVE_SCREENSHOTS", "")


def shots(page: Any, name: str) -> None:
    """Check the page at desktop and phone width (neither may scroll sideways); keep shots."""
    for width in (1280, 390):
        page.set_viewport_size({"width": width, "height": 900})
        if SHOTS:
            Path(SHOTS).mkdir(parents=True, exist_ok=True)
            page.screenshot(path=str(Path(SHOTS) / f"{name}-{width}.png"), full_page=True)
        overflow = page.evaluate("document.documentElement.scrollWidth > window.innerWidth")
        assert not overflow, f"{name} scrolls sideways at {width} px"
    page.set_viewport_size({"width": 1280, "height": 900})


def test_an_editor_imports_an_export_and_a_reader_finds_and_subscribes(
    live_server, page, feed_server, tmp_path
):
    app = live_server.app
    blog = [Post(n, published=START + timedelta(weeks=n)) for n in (101, 102, 103)]
    feed_url = feed_server.serve("/feed.xml", rss(blog))
    override_settings(app, feed=Feed(feed_url, "draft", 900.0))
    with app.app_context():
        add_editor("ed@example.org")
        add_tips(45)
        poll_feed(db.session(), settings().feed, fetching_for(settings()))
        fresh = Post(104, title="Undo a git commit you pushed", published=utcnow())
        feed_server.serve("/feed.xml", rss([*blog, fresh]))
        poll_feed(db.session(), settings().feed, fetching_for(settings()))
        db.session.remove()
    export = tmp_path / "medium-export.zip"
    posts = weekly(3)
    posts[0].title = "Read a man page in half the time"
    export.write_bytes(medium_export(posts, drafts=1))

    page.goto(live_server.url + "/editor/archive")
    page.get_by_label("Email").fill("ed@example.org")
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()
    page.get_by_role("heading", name="Back catalogue").wait_for()
    page.goto(live_server.url + "/editor/import")  # where an editor looks for it
    page.get_by_role("link", name="back catalogue").click()
    page.get_by_role("heading", name="Back catalogue").wait_for()
    page.set_input_files("#file", str(export))
    page.get_by_role("button", name="Import").click()
    # A worker runs it; the import's page refreshes itself until the report is there.
    page.get_by_role("heading", name="Import of medium-export.zip").wait_for()
    page.locator("#report").wait_for()
    assert page.locator("#added strong").inner_text() == "3"
    assert page.locator("#skipped strong").inner_text() == "1"
    assert "a draft: never published" in page.locator("#skipped-rows").inner_text()
    shots(page, "editor-back-catalogue-import")
    page.get_by_role("link", name="Import another source").click()
    page.get_by_role("heading", name="Back catalogue").wait_for()
    assert page.locator("#feed-archived").inner_text().startswith("3")
    assert page.locator("#feed-issues").inner_text() == "1"
    shots(page, "editor-back-catalogue")
    page.locator("#feed-made").get_by_role("link", name="Undo a git commit you pushed").click()
    page.locator("#issue-source").wait_for()
    assert page.locator("#issue-source a").first.get_attribute("href").startswith(fresh.link)
    assert page.locator("#issue-status").inner_text() == "Draft"
    shots(page, "editor-issue-from-the-blog")

    reader = page.context.browser.new_context().new_page()
    reader.goto(live_server.url + "/archive")
    assert reader.locator(".tips > li").count() == 20
    first = reader.locator(".tips .excerpt").first.inner_text()
    assert first.startswith("Tip number 103. Run tool --103")
    shots(reader, "archive")
    reader.get_by_placeholder("Search the tips").fill("man page")
    reader.get_by_role("button", name="Search").click()
    reader.locator("#filter").wait_for()
    assert reader.locator(".tips h2").all_inner_texts() == ["Read a man page in half the time"]
    shots(reader, "archive-search")
    reader.goto(live_server.url + "/archive")
    reader.locator(".tags a", has_text="tmux").first.click()
    reader.locator("#filter").wait_for()
    assert "tmux" in reader.locator("#filter").inner_text()
    shots(reader, "archive-tag")
    reader.goto(live_server.url + "/archive")
    reader.get_by_placeholder("Search the tips").fill("man page")
    reader.get_by_role("button", name="Search").click()
    reader.get_by_role("link", name="Read a man page in half the time").click()
    reader.get_by_role("heading", name="Read a man page in half the time").wait_for()
    assert reader.locator("#canonical a").get_attribute("href") == posts[0].link
    shots(reader, "tip")
    reader.get_by_label("Your email address").fill("fan@example.com")
    reader.get_by_role("button", name="Subscribe").click()
    reader.wait_for_url("**/check-inbox*")
    reader.context.close()
