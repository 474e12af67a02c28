"""In Chromium: the issue page reads as the work goes (write, preview and test, a last review
naming the audience, send or schedule) at 1280 and 390 px; a sent issue's archive page is
corrected from it, and the archive says so."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from playwright.sync_api import expect

from newsletter.extensions import db
from newsletter.issues.actions import create_issue
from newsletter.models import IssueStatus, Subscriber, SubscriberStatus, utcnow
from newsletter.subscribers.tags import add_tags
from tests.helpers.editors import add_editor
from tests.web.test_browser_branding import log_in, shoot

pytestmark = pytest.mark.browser

STEPS = ["1 Write", "2 Preview and test", "3 Last review", "4 Send or schedule"]


def _readers(app) -> None:
    with app.app_context():
        add_editor("ed@example.org")
        people = [
            Subscriber(email=f"r{i}@example.com", status=SubscriberStatus.CONFIRMED)
            for i in range(3)
        ]
        db.session.add_all(people)
        db.session.commit()
        add_tags(db.session(), people[0].id, ["python"], by="editor")
        db.session.commit()
        db.session.remove()


def _steps_as_seen(page) -> list[str]:
    """Return the step headings from the top of the page down, as laid out on screen."""
    headings = page.locator("main h2")
    seen = []
    for i in range(headings.count()):
        box = headings.nth(i).bounding_box()
        text = " ".join(headings.nth(i).inner_text().split())
        if box and re.match(r"^\d ", text):
            seen.append((box["y"], box["x"], text))
    return [text for _y, _x, text in sorted(seen)]


def test_the_issue_page_reads_in_the_order_of_the_work(live_server, page):
    _readers(live_server.app)
    with live_server.app.app_context():
        issue_id = create_issue("Tip: pathlib", "Use **pathlib**.").id
        db.session.remove()
    log_in(page, live_server.url)
    page.goto(f"{live_server.url}/editor/issues/{issue_id}")
    for width in (1280, 390):
        page.set_viewport_size({"width": width, "height": 900})
        assert _steps_as_seen(page) == STEPS, width
        assert page.evaluate("document.documentElement.scrollWidth") <= width
    page.set_viewport_size({"width": 1280, "height": 900})
    review = page.locator("#step-review")
    expect(review.locator("#review-subject")).to_have_text("Subject “Tip: pathlib”")
    expect(review.locator("#audience-count")).to_have_text(re.compile(r"^3 confirmed readers"))
    # The review's audience is the one the send button names.
    review.get_by_label("python").check()
    expect(review.locator("#audience-count")).to_have_text(re.compile(r"^1 confirmed reader "))
    review.get_by_role("button", name="Use these tags").click()
    page.get_by_text("This issue goes to the readers tagged python: 1 now.").wait_for()
    expect(page.locator("#send-now")).to_have_text("Send now to 1 subscriber")
    # Each step sits above the next, also where the preflight and the test form are.
    assert (
        page.locator("#body_md").bounding_box()["y"]
        < page.get_by_role("button", name="Send test").bounding_box()["y"]
        < page.locator("#preflight").bounding_box()["y"]
        < page.locator("#send-now").bounding_box()["y"]
        < page.get_by_role("button", name="Schedule").bounding_box()["y"]
    )
    shoot(page, "issue-steps")


def test_a_sent_issue_is_corrected_from_its_page_and_the_archive_says_updated(live_server, page):
    _readers(live_server.app)
    with live_server.app.app_context():
        issue = create_issue("Tip: grpe", "Read [the manual](https://example.org/grpe).")
        issue_id, slug = issue.id, issue.slug
        issue.status, issue.queued_at = IssueStatus.SENT, utcnow() - timedelta(days=1)
        issue.sent_at = issue.queued_at
        db.session.commit()
        db.session.remove()
    log_in(page, live_server.url)
    page.goto(f"{live_server.url}/editor/issues/{issue_id}")
    expect(page.locator("#issue-status")).to_have_text("Sent")
    assert _steps_as_seen(page) == []  # no steps left: the work is done
    page.get_by_label("Subject").fill("Tip: grep")
    page.get_by_label("Body (Markdown)").fill("Read [the manual](https://example.org/grep).")
    page.get_by_role("button", name="Save the correction").click()
    page.get_by_text("Corrected: the archive page and the feed show the new text.").wait_for()
    history = page.locator("#corrections")
    expect(history).to_contain_text("by ed@example.org: subject “Tip: grpe” → “Tip: grep”")
    expect(history.locator(".del")).to_have_text("-Read [the manual](https://example.org/grpe).")
    expect(history.locator(".ins")).to_have_text("+Read [the manual](https://example.org/grep).")
    page.set_viewport_size({"width": 390, "height": 900})
    assert page.evaluate("document.documentElement.scrollWidth") <= 390
    page.set_viewport_size({"width": 1280, "height": 900})
    shoot(page, "issue-corrected")
    page.goto(f"{live_server.url}/archive/{slug}")
    expect(page.locator("h1")).to_have_text("Tip: grep")
    expect(page.locator("#updated")).to_have_text(re.compile(r"^Updated \w+ \d+, \d{4}$"))
    expect(page.get_by_role("link", name="the manual")).to_have_attribute(
        "href", "https://example.org/grep"
    )
    shoot(page, "archive-updated")
    with live_server.app.app_context():
        merged = create_issue("Hi {{ name | default('there') }}: a second tip", "Hello.")
        merged.status, merged.sent_at = IssueStatus.SENT, utcnow()
        db.session.commit()
        db.session.remove()
    page.goto(f"{live_server.url}/archive")
    expect(page.get_by_role("link", name="Hi there: a second tip")).to_be_visible()
    expect(page.locator("main")).not_to_contain_text("{{")
    shoot(page, "archive-list")
