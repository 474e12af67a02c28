"""In headless Chromium: the stats page's tables of who left and each tag's growth, a bulk
unsubscribe followed on its own page (a meta refresh, allowed by the page's CSP) to its report,
a sent issue's readers who left since, and a reader's link to join a group.
Each page is checked (and, with SCREENSHOTS set to a folder, photographed) at 1280 and 390 px."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
import sqlalchemy as sa
from playwright.sync_api import expect

from newsletter.extensions import db
from newsletter.extensions import settings as app_settings
from newsletter.models import Delivery, DeliveryStatus, Issue, IssueStatus, Subscriber, utcnow
from newsletter.subscribers import state
from newsletter.subscribers.bulk_jobs import BulkJob
from newsletter.subscribers.groups import join_token
from newsletter.subscribers.signup import subscribe
from newsletter.subscribers.tags import add_tags
from tests.web.test_browser_list import _log_in, _shots

pytestmark = pytest.mark.browser


def _seed_stats(live: Any) -> None:
    with live.app.app_context():
        now = utcnow()
        ids = []
        for i in range(5):
            sid = subscribe(db.session, f"s{i}@example.org").subscriber_id
            db.session.commit()
            sub = db.session.get(Subscriber, sid)
            assert sub is not None
            if i < 4:
                state.confirm(db.session, sid, sub.version)
            ids.append(sid)
        add_tags(db.session, ids[0], ["Workshop group 7"], by="test")
        db.session.add_all(
            [
                Issue(
                    slug=f"i{n}",
                    subject=subject,
                    body_md="x",
                    status=IssueStatus.SENT,
                    queued_at=now - timedelta(days=days),
                    sent_at=now - timedelta(days=days),
                )
                for n, (subject, days) in enumerate(
                    [("Keyboard shortcuts for the shell", 8), ("Regular expressions", 0)]
                )
            ]
        )
        db.session.commit()
        state.unsubscribe(db.session, ids[0], detail="one-click")
        state.unsubscribe(db.session, ids[1], detail="complaint")
        db.session.commit()
        db.session.remove()


def test_the_stats_page_shows_who_left_and_tag_growth(live_server, page):
    _log_in(live_server, page)
    _seed_stats(live_server)
    page.goto(live_server.url + "/editor/stats")
    expect(page.locator("#overall-rate strong")).to_have_text("80%")
    row = page.locator("#left-after tr", has_text="Regular expressions")
    expect(row.locator('[data-door="one-click"]')).to_have_text("1")
    expect(row.locator('[data-door="complaint"]')).to_have_text("1")
    expect(page.locator("#growth tbody tr").first).to_contain_text("Workshop group 7")
    _shots(page, "stats")


def test_a_bulk_unsubscribe_is_followed_to_its_report(live_server, page):
    _log_in(live_server, page, tagged=150, other=5)
    with live_server.app.app_context():
        # A job nobody queued: the list says it is under way.
        db.session.add(BulkJob(action="erase", total=3, by="test"))
        db.session.commit()
        db.session.remove()
    page.goto(live_server.url + "/editor/subscribers?tag=group+7")
    expect(page.locator("#bulk-running")).to_contain_text("Erasing 3 people: 0 done so far")
    _shots(page, "subscribers-job-running")
    page.locator("#bulk label.all input").check()
    page.locator("#bulk-action").select_option("unsubscribe")
    page.locator("#bulk-go").click()
    expect(page.locator("h1")).to_have_text("Unsubscribing 150 people")
    expect(page.locator("#bulk-report")).to_contain_text(
        "Unsubscribed 150 people (recorded as by you).", timeout=20_000
    )
    expect(page.locator("#bulk-counter")).to_have_text("150 of 150 gone through")
    _shots(page, "bulk-job-done")


def test_a_sent_issue_says_who_left_since_and_a_reader_joins_a_group(live_server, page):
    _log_in(live_server, page, tagged=1, other=1)  # r0 in group 7, r1 in group 8
    with live_server.app.app_context():
        now = utcnow()
        issue = Issue(
            slug="sent",
            subject="Sent tip",
            body_md="x",
            status=IssueStatus.SENT,
            queued_at=now - timedelta(minutes=5),
            sent_at=now - timedelta(minutes=4),
            audience=2,
        )
        db.session.add(issue)
        db.session.flush()
        readers = db.session.scalars(sa.select(Subscriber).order_by(Subscriber.id)).all()
        db.session.add_all(
            Delivery(issue_id=issue.id, subscriber_id=r.id, status=DeliveryStatus.SENT)
            for r in readers
        )
        db.session.commit()
        state.unsubscribe(db.session, readers[1].id, detail="one-click")
        db.session.commit()
        issue_id, reader = issue.id, readers[0]
        found = app_settings(live_server.app)
        token = join_token(found.secret_key, found.secret_key_fallbacks, reader, "group 8")
        db.session.remove()
    page.goto(f"{live_server.url}/editor/issues/{issue_id}")
    expect(page.locator('[data-s="left"]')).to_have_text("Left since: 1 by the one-click button.")
    _shots(page, "issue-left-since")
    page.goto(f"{live_server.url}/join/{token}")
    expect(page.locator("h1")).to_have_text("Join group 8")
    _shots(page, "join-group")
    page.locator("#join").click()
    expect(page.locator("#joined")).to_contain_text("now carries group 8")
    _shots(page, "join-group-done")
