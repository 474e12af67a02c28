"""In real headless Chromium: "start from the first tip" on the form, and the reader's pace."""

from __future__ import annotations

import os
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from newsletter.delivery.evergreen import step
from newsletter.extensions import db
from newsletter.models import Issue, IssueStatus, Subscriber, SubscriberStatus, utcnow
from newsletter.services import tokens
from tests.helpers import links
from tests.helpers.browser import live_server, page  # noqa: F401
from tests.helpers.editors import PASSWORD, add_editor

pytestmark = pytest.mark.browser
SHOTS = Path(os.environ.get("EVERGREEN_SHOTS", "/tmp/shots/evergreen"))


def _look(tab: Any, name: str) -> None:
    """Screenshot at desktop and phone width; the page must never scroll sideways."""
    SHOTS.mkdir(parents=True, exist_ok=True)
    for width in (1280, 390):
        tab.set_viewport_size({"width": width, "height": 900})
        tab.screenshot(path=str(SHOTS / f"{name}-{width}.png"), full_page=True)
        assert tab.evaluate("document.documentElement.scrollWidth") <= width, (name, width)
    tab.set_viewport_size({"width": 1280, "height": 900})


def _reader(app: Any, email: str) -> Subscriber:
    with app.app_context():
        sub = db.session.scalar(sa.select(Subscriber).where(Subscriber.email == email))
        assert sub is not None
        db.session.expunge(sub)
        db.session.remove()
        return sub


def _catalogue(app: Any, count: int) -> None:
    with app.app_context():
        for n in range(1, count + 1):
            db.session.add(
                Issue(
                    subject=f"Old tip {n}",
                    body_md="Body.",
                    slug=f"old-tip-{n}",
                    status=IssueStatus.ARCHIVED,
                    sent_at=datetime(2020, 1, n, tzinfo=UTC),
                )
            )
        db.session.commit()
        db.session.remove()


def test_a_reader_ticks_start_from_the_first_tip_and_later_sets_the_pace(
    live_server,  # noqa: F811
    page,  # noqa: F811
    inbox,
):
    base, app = live_server.url, live_server.app
    _catalogue(app, 3)
    page.goto(base + "/")
    page.get_by_label("Your email address").fill("early.bird@example.com")
    box = page.get_by_label("Start from the first tip")
    assert not box.is_checked()
    box.check()
    _look(page, "form-start-first")
    page.get_by_role("button", name="Subscribe").click()
    page.get_by_role("heading", name="Check your inbox").wait_for()
    reader = _reader(app, "early.bird@example.com")
    assert reader.evergreen and reader.evergreen_due_at is None  # not before confirming

    (confirmation,) = inbox.wait_for(1, timeout=15)
    link = next(u for u in links(confirmation) if u.startswith(base + "/confirm/"))
    page.goto(link)
    page.get_by_role("heading", name="You're subscribed. Welcome!").wait_for()
    # The first tip comes right after confirming, beside the welcome, not at a later tick.
    mails = inbox.wait_for(3, timeout=20)
    assert "Old tip 1" in [str(m["Subject"]) for m in mails]
    reader = _reader(app, "early.bird@example.com")
    assert reader.evergreen_position == 1

    with app.app_context():
        manage = tokens().manage_token(reader.id, reader.created_at, reader.email)
    page.goto(f"{base}/manage/{manage}")
    page.get_by_role("heading", name="From the first tip").wait_for()
    page.get_by_text("you are at tip 1 of 3").wait_for()
    pace = page.get_by_label("One earlier tip")
    pace.select_option("twice-weekly")
    page.get_by_role("button", name="Save the pace").click()
    page.get_by_text("Your pace is saved.").wait_for()
    assert _reader(app, "early.bird@example.com").evergreen_pace == 302400
    assert page.get_by_label("One earlier tip").input_value() == "twice-weekly"
    _look(page, "manage-pace")

    page.get_by_role("button", name="Stop the earlier tips").click()
    page.get_by_text("No more earlier tips. New tips still come as usual.").wait_for()
    left = _reader(app, "early.bird@example.com")
    assert not left.evergreen and left.evergreen_due_at is None
    _look(page, "manage-left")
    page.get_by_role("button", name="Continue from where I stopped").click()
    page.get_by_text("The earlier tips are on their way, one at a time.").wait_for()
    back = _reader(app, "early.bird@example.com")
    assert back.evergreen and back.evergreen_due_at is not None
    assert live_server.errors == []


def test_an_unknown_pace_is_refused_and_changes_nothing(live_server, page):  # noqa: F811
    base, app = live_server.url, live_server.app
    page.goto(base + "/")
    with app.app_context():
        sub = Subscriber(email="pace@example.com", name="", evergreen=True)
        sub.status = SubscriberStatus.CONFIRMED
        db.session.add(sub)
        db.session.commit()
        manage = tokens().manage_token(sub.id, sub.created_at, sub.email)
        db.session.remove()
    page.goto(f"{base}/manage/{manage}")
    page.get_by_label("One earlier tip").evaluate(
        "s => { const o = document.createElement('option'); o.value = 'hourly';"
        " o.textContent = 'hourly'; s.appendChild(o); s.value = 'hourly'; }"
    )
    page.get_by_role("button", name="Save the pace").click()
    page.get_by_text("Choose daily, twice a week or weekly.").wait_for()
    assert _reader(app, "pace@example.com").evergreen_pace is None


def test_the_editor_sees_the_sequence_and_a_readers_position(live_server, page):  # noqa: F811
    base, app = live_server.url, live_server.app
    _catalogue(app, 4)
    with app.app_context():
        add_editor("ed@example.org")
        sub = Subscriber(
            email="seq.reader.with.a.long.address@example.com",
            status=SubscriberStatus.CONFIRMED,
            evergreen=True,
            evergreen_due_at=utcnow(),
        )
        db.session.add(sub)
        db.session.commit()
        step(db.session(), utcnow(), 604800)
        db.session.commit()
        sid = sub.id
        db.session.remove()
    page.goto(base + "/editor/archive")
    page.get_by_label("Email").fill("ed@example.org")
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()
    page.get_by_role("heading", name="The evergreen sequence").wait_for()
    assert page.locator("#sequence-readers").inner_text() == "1"
    assert page.locator("#sequence-tips-count").inner_text() == "4"
    page.get_by_role("link", name="Choose the tips and their order").click()
    page.get_by_role("heading", name="The evergreen sequence").wait_for()
    assert page.locator("#sequence-readers").inner_text() == "1"
    rows = page.locator("#sequence-tips tbody tr")
    assert rows.count() == 4
    # Place, tip, date, number, sent by the sequence, on the way, readers at this tip.
    cells = rows.nth(0).locator("td")
    assert [cells.nth(i).inner_text() for i in range(7)] == [
        "1", "Old tip 1", "2020-01-01", "Tip 1 of 4", "0", "1", "1"
    ]  # fmt: skip
    cells = rows.nth(3).locator("td")
    assert [cells.nth(i).inner_text() for i in range(7)] == [
        "4", "Old tip 4", "2020-01-04", "Tip 4 of 4", "0", "0", "0"
    ]  # fmt: skip
    assert "At tip 1: 1" in page.locator("#positions").inner_text()
    _look(page, "editor-sequence")
    page.goto(f"{base}/editor/subscribers/{sid}")
    assert "in the sequence, at tip 1 of 4" in page.locator("#sequence").inner_text()
    _look(page, "editor-reader-position")


def test_the_editor_orders_the_sequence_without_javascript_needed(live_server, page):  # noqa: F811
    base, app = live_server.url, live_server.app
    _catalogue(app, 3)
    with app.app_context():
        add_editor("ed@example.org")
    page.goto(base + "/editor/sequence")
    page.get_by_label("Email").fill("ed@example.org")
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()
    page.get_by_role("heading", name="The evergreen sequence").wait_for()
    # A new place typed and Enter pressed moves the tip (not the row's first button).
    page.get_by_label("New place for “Old tip 3”").fill("1")
    page.get_by_label("New place for “Old tip 3”").press("Enter")
    page.get_by_text("“Old tip 3” is now at place 1.").wait_for()
    page.get_by_role("button", name="Leave “Old tip 1” out").click()
    page.get_by_text("“Old tip 1” is left out of the sequence.").wait_for()
    numbers = page.locator("#sequence-tips tbody td.number")
    assert numbers.all_inner_texts() == ["Tip 1 of 2", "left out", "Tip 2 of 2"]
    rows = page.locator("#sequence-tips tbody tr")
    assert "Old tip 3" in rows.nth(0).inner_text()
    assert page.locator("#sequence-count").inner_text() == "2"
    _look(page, "editor-sequence-chosen")
    page.get_by_role("button", name="Move “Old tip 2” up").click()
    page.get_by_text("“Old tip 2” is now at place 2.").wait_for()
    assert numbers.all_inner_texts() == ["Tip 1 of 2", "Tip 2 of 2", "left out"]
    assert live_server.errors == []
