"""The stats page: weekly charts from DailyStat, confirmation rate, per-issue figures."""

from __future__ import annotations

import re
from datetime import timedelta

from newsletter.extensions import db
from newsletter.models import DailyStat, Delivery, DeliveryStatus, Issue, IssueStatus, utcnow
from newsletter.subscribers import stats
from tests.helpers.editors import editor_client


def add_stats(day, **kinds):
    for kind, count in kinds.items():
        db.session.merge(DailyStat(day=day, kind=kind, count=count))


def test_weekly_figures_add_up_days_into_weeks(app):
    today = utcnow().date()
    monday = stats.week_start(today)
    add_stats(monday, subscribed=4, confirmed=2)
    add_stats(monday - timedelta(days=1), subscribed=10, confirmed=5, bounced=1)
    add_stats(monday - timedelta(days=400), subscribed=99)  # too old for the chart
    db.session.commit()
    weeks = stats.weekly(db.session, today, weeks=4)
    assert [w.start for w in weeks][-1] == monday
    assert {k: weeks[-1].counts[k] for k in ("subscribed", "confirmed", "unsubscribed")} == {
        "subscribed": 4,
        "confirmed": 2,
        "unsubscribed": 0,
    }
    assert weeks[-2].counts["subscribed"] == 10 and weeks[-2].counts["bounced"] == 1
    assert weeks[-2].confirmation_rate == 0.5
    assert weeks[0].confirmation_rate is None


def test_per_issue_counts_and_what_happened_after(app, make_subscriber):
    a, b = make_subscriber(), make_subscriber()
    now = utcnow()
    first = Issue(
        slug="one",
        subject="One",
        body_md="x",
        status=IssueStatus.SENT,
        queued_at=now - timedelta(days=10),
        sent_at=now - timedelta(days=10),
    )
    second = Issue(
        slug="two",
        subject="Two",
        body_md="x",
        status=IssueStatus.SENT,
        queued_at=now - timedelta(days=3),
        sent_at=now - timedelta(days=3),
    )
    db.session.add_all([first, second])
    db.session.flush()
    db.session.add_all(
        [
            Delivery(issue_id=first.id, subscriber_id=a.id, status=DeliveryStatus.SENT),
            Delivery(issue_id=first.id, subscriber_id=b.id, status=DeliveryStatus.FAILED),
            Delivery(issue_id=second.id, subscriber_id=a.id, status=DeliveryStatus.SENT),
        ]
    )
    add_stats((now - timedelta(days=9)).date(), unsubscribed=2, bounced=1)
    add_stats((now - timedelta(days=1)).date(), unsubscribed=5)
    db.session.commit()
    figures = stats.issue_figures(db.session, stats.recent_issues(db.session))
    assert [(f.subject, f.sent, f.failed, f.bounced, f.unsubscribed) for f in figures] == [
        ("One", 1, 1, 1, 2),
        ("Two", 1, 0, 0, 5),
    ]


def test_the_page_draws_charts_with_bars(app, make_subscriber):
    make_subscriber(status="confirmed")
    today = utcnow().date()
    add_stats(today, subscribed=8, confirmed=6, unsubscribed=1)
    add_stats(today - timedelta(days=7), subscribed=4, confirmed=1)
    issue = Issue(
        slug="s",
        subject="Sent one",
        body_md="x",
        status=IssueStatus.SENT,
        queued_at=utcnow(),
        sent_at=utcnow(),
    )
    db.session.add(issue)
    db.session.flush()
    db.session.add(Delivery(issue_id=issue.id, status=DeliveryStatus.SENT))
    db.session.commit()
    html = editor_client(app).get("/editor/stats").text
    for section in ("weekly", "rate", "issues"):
        part = html[html.index(f'id="{section}"') :]
        assert "<svg" in part[: part.index("</svg>")]
    heights = [float(h) for h in re.findall(r'class="bar"[^>]* height="([\d.]+)"', html)]
    assert sum(1 for h in heights if h > 0) >= 5
    assert 'class="line"' in html  # two weeks of rates make a line
    assert "58%" in html  # 7 confirmed of 12 new, over all time
    assert "<script" not in html.split("<main>")[1]  # drawn on the server, no CDN


def test_an_empty_newsletter_still_has_a_page(app):
    html = editor_client(app).get("/editor/stats").text
    assert "No issue has gone out yet" in html and "<svg" in html
