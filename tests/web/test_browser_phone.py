"""In Chromium at 390 px: every editor page fits the screen (no sideways scroll), the nav
folds into a menu, and tables read as cards; at 1280 px the nav is one line."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from newsletter.bounces.intake import Notice, apply_notice
from newsletter.delivery.message import MessageIds
from newsletter.extensions import db, settings
from newsletter.issues.actions import create_issue
from newsletter.models import BounceKind, ImportJob, Subscriber, SubscriberStatus, Webhook, utcnow
from newsletter.tasks.dispatch import send_issue
from tests.helpers.editors import PASSWORD, add_editor

pytestmark = pytest.mark.browser

LONG_URL = "https://docs.example.org/" + "a-very-long-path-segment/" * 8 + "index.html"


def _world(live) -> dict[str, int]:
    """An editor, readers (one with a very long address), a sent issue with a bounce, a draft
    whose body holds a long URL, an import and a webhook: something on every page."""
    app = live.app
    with app.app_context():
        add_editor("ed@example.org")
        long_address = "someone.with.a.rather.long.name." + "x" * 30 + "@subdomain.example.com"
        people = [
            Subscriber(email=e, name=n, status=SubscriberStatus.CONFIRMED, confirmed_at=utcnow())
            for e, n in (("ada@example.com", "Ada Lovelace"), (long_address, "Long"))
        ]
        db.session.add_all(people)
        db.session.commit()
        sent = create_issue("A tip that went out with a rather long subject line", "Body")
        send_issue(sent.id)
        live.drain()
        found = settings(app)
        domain = found.mail_from.rpartition("@")[2].rstrip(">")
        mid = MessageIds(sent.id, found.secret_key.encode(), domain)(people[0].id)
        notice = Notice(
            kind=BounceKind.HARD, source="dsn", diagnostic="user unknown " + "z" * 120,
            status_code="5.1.1", message_id=mid, raw="550 5.1.1 user unknown " + LONG_URL,
        )  # fmt: skip
        apply_notice(db.session(), notice, found)
        draft = create_issue("Draft with a link", f"See {LONG_URL}\n\n    {LONG_URL}")
        job = ImportJob(filename="readers-" + "long" * 20 + ".csv", csv_text=None)
        db.session.add(job)
        db.session.add(Webhook(url=LONG_URL, secret="s" * 32, events="subscriber.confirmed"))
        db.session.commit()
        ids = {"sent": sent.id, "draft": draft.id, "sub": people[1].id, "job": job.id}
        bounce = db.session.execute(db.text("SELECT id FROM bounce")).scalar()
        ids["bounce"] = int(bounce)
        db.session.remove()
        return ids


def _pages(ids: dict[str, int]) -> list[str]:
    return [
        "/editor/",
        "/editor/issues/new",
        f"/editor/issues/{ids['draft']}",
        f"/editor/issues/{ids['draft']}/preview",
        f"/editor/issues/{ids['sent']}",
        "/editor/subscribers",
        f"/editor/subscribers/{ids['sub']}",
        f"/editor/subscribers/{ids['sub']}/erase",
        "/editor/import",
        f"/editor/import/{ids['job']}",
        "/editor/stats",
        "/editor/bounces",
        f"/editor/bounces/{ids['bounce']}",
        "/editor/embed",
        "/editor/tokens",
        "/editor/webhooks",
        "/editor/doctor",
        "/editor/settings",
    ]


def _log_in(page, url: str) -> None:
    page.goto(url + "/editor/login")
    page.get_by_label("Email").fill("ed@example.org")
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()
    page.wait_for_url("**/editor/")


def _name(path: str) -> str:
    return path.strip("/").replace("/", "_").replace(".", "_") or "editor"


def test_every_editor_page_fits_a_phone_and_its_menu_folds(live_server, page):
    ids = _world(live_server)
    shots = os.environ.get("SHOTS_DIR")
    page.set_viewport_size({"width": 390, "height": 844})
    page.goto(live_server.url + "/editor/login")
    assert page.evaluate("document.documentElement.scrollWidth") <= 390
    _log_in(page, live_server.url)
    for path in _pages(ids):
        page.goto(live_server.url + path)
        page.wait_for_load_state("networkidle")
        width = page.evaluate("document.documentElement.scrollWidth")
        assert width <= 390, f"{path} is {width} px wide at 390"
        if shots:
            Path(shots).mkdir(parents=True, exist_ok=True)
            page.screenshot(path=f"{shots}/phone-{_name(path)}-390.png", full_page=True)
        # The nav is folded: the links are hidden until the menu opens.
        menu = page.get_by_role("button", name="Menu")
        assert menu.is_visible(), path
        assert not page.get_by_role("link", name="Webhooks").is_visible(), path

    page.goto(live_server.url + "/editor/subscribers")
    page.get_by_role("button", name="Menu").click()
    assert page.get_by_role("button", name="Menu").get_attribute("aria-expanded") == "true"
    page.get_by_role("link", name="Settings").click()
    page.get_by_role("heading", name="Settings: your newsletter's look").wait_for()

    # A table is a stack of cards, each cell labelled with its column.
    page.goto(live_server.url + "/editor/subscribers")
    cell = page.locator("main table tbody tr").first.locator("td").first
    assert cell.get_attribute("data-label")
    assert cell.evaluate("td => getComputedStyle(td).display") == "block"

    # The issue page's Markdown, long URL and all, wraps inside the screen.
    page.goto(live_server.url + f"/editor/issues/{ids['sent']}")
    assert page.evaluate("document.documentElement.scrollWidth") <= 390


def test_at_1280_every_editor_page_has_its_nav_on_one_line(live_server, page):
    ids = _world(live_server)
    shots = os.environ.get("SHOTS_DIR")
    page.set_viewport_size({"width": 1280, "height": 900})
    _log_in(page, live_server.url)
    for path in _pages(ids):
        page.goto(live_server.url + path)
        page.wait_for_load_state("networkidle")
        if shots:
            page.screenshot(path=f"{shots}/desk-{_name(path)}-1280.png", full_page=True)
        assert not page.get_by_role("button", name="Menu").is_visible(), path
        nav = page.locator("header nav")
        first = nav.get_by_role("link", name="Issues").bounding_box()
        logout = nav.get_by_role("button", name="Log out").bounding_box()
        assert abs(first["y"] - logout["y"]) < 12, path
        assert page.evaluate("document.documentElement.scrollWidth") <= 1280, path
