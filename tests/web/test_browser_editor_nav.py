"""In headless Chromium: every editor page has the same nav, with a working Log out button."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.helpers.editors import PASSWORD, seed_people

pytestmark = pytest.mark.browser

PAGES = [
    "/editor/",
    "/editor/subscribers",
    "/editor/subscribers/1",
    "/editor/subscribers/1/erase",
    "/editor/import",
    "/editor/stats",
    "/editor/tokens",
    "/editor/embed",
    "/editor/webhooks",
    "/editor/archive",
    "/editor/sequence",
]
LINKS = [
    "Issues", "Subscribers", "Import", "Archive", "Stats", "Bounces", "Embed", "API tokens",
    "Webhooks", "Settings",
]  # fmt: skip


def test_every_editor_page_has_one_nav_with_log_out(live_server, page, tmp_path):
    seed_people(live_server.app)
    page.goto(live_server.url + "/editor/login")
    page.get_by_label("Email").fill("ed@example.org")
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()
    page.wait_for_url("**/editor/**")
    shots = Path(os.environ.get("EDITOR_SCREENSHOTS", tmp_path))
    for path in PAGES:
        page.goto(live_server.url + path)
        page.screenshot(path=str(shots / ((path.strip("/").replace("/", "_") or "x") + ".png")))
        nav = page.locator("header nav")
        assert nav.get_by_role("link").all_inner_texts() == LINKS, path
        logout = nav.get_by_role("button", name="Log out")
        assert logout.is_visible(), path
        # The nav is one line, its button level with the links, nothing spilling sideways.
        boxes = [nav.get_by_role("link", name=n).bounding_box() for n in ("Issues", "Webhooks")]
        button = logout.bounding_box()
        assert abs(boxes[0]["y"] - button["y"]) < 12, path
        width = page.evaluate("document.documentElement.scrollWidth")
        assert width <= page.viewport_size["width"], path

    page.goto(live_server.url + "/editor/stats")
    page.locator("header nav").get_by_role("button", name="Log out").click()
    page.wait_for_url("**/editor/login**")
    page.goto(live_server.url + "/editor/subscribers")
    assert "/editor/login" in page.url
