"""The editor's subscribers pages: search, filter, keyset pages, a person's history, erase."""

from __future__ import annotations

import re
from datetime import timedelta
from urllib.parse import urlencode

import sqlalchemy as sa

from newsletter.extensions import db
from newsletter.models import (
    Delivery,
    DeliveryStatus,
    Issue,
    IssueStatus,
    Subscriber,
    SubscriberEvent,
    Webhook,
    WebhookDelivery,
    utcnow,
)
from newsletter.subscribers.signup import subscribe
from newsletter.subscribers.state import unsubscribe
from newsletter.webhooks.events import emit
from tests.helpers import csrf_from, emails_on
from tests.helpers.editors import editor_client


def test_anonymous_visitors_are_sent_to_the_login_page(client):
    for path in ("/editor/subscribers", "/editor/stats", "/editor/tokens", "/editor/import"):
        response = client.get(path)
        assert response.status_code == 302
        assert "/editor/login" in response.headers["Location"]


def test_search_finds_by_address_or_name_and_filters_by_status(app, make_subscriber):
    make_subscriber("ada@example.com", "confirmed", "Ada Lovelace")
    make_subscriber("grace@example.com", "pending", "Grace Hopper")
    make_subscriber("alan@example.org", "unsubscribed", "Alan Turing")
    client = editor_client(app)

    assert emails_on(client.get("/editor/subscribers?q=LOVELACE").text) == ["ada@example.com"]
    assert emails_on(client.get("/editor/subscribers?q=example.org").text) == ["alan@example.org"]
    assert set(emails_on(client.get("/editor/subscribers?q=a").text)) == {
        "ada@example.com",
        "grace@example.com",
        "alan@example.org",
    }
    assert emails_on(client.get("/editor/subscribers?status=pending").text) == ["grace@example.com"]
    page = client.get("/editor/subscribers?status=confirmed&q=grace").text
    assert emails_on(page) == [] and "Nobody matches" in page
    # LIKE wildcards are searched for literally.
    assert emails_on(client.get("/editor/subscribers?q=%25").text) == []


def test_counts_per_status_are_shown(app, make_subscriber):
    for _ in range(3):
        make_subscriber(status="confirmed")
    make_subscriber(status="bounced")
    page = editor_client(app).get("/editor/subscribers").text
    assert re.search(r'data-status="confirmed">Confirmed <strong>3</strong>', page)
    assert re.search(r'data-status="bounced">Bounced <strong>1</strong>', page)


def test_keyset_pages_cover_everyone_once_in_both_directions(app):
    db.session.execute(
        sa.insert(Subscriber),
        [
            {"email": f"p{i:03}@example.com", "name": f"P {i}", "status": "confirmed"}
            for i in range(123)
        ],
    )
    db.session.commit()
    client = editor_client(app)
    seen, url, pages = [], "/editor/subscribers", []
    while url:
        html = client.get(url).text
        assert "OFFSET" not in html
        pages.append(emails_on(html))
        seen += pages[-1]
        match = re.search(r'<a href="(\?[^"]+)" rel="next">', html)
        url = "/editor/subscribers" + match.group(1).replace("&amp;", "&") if match else None
    assert [len(p) for p in pages] == [50, 50, 23]
    assert seen == [f"p{i:03}@example.com" for i in reversed(range(123))]
    # From the last page, "Newer" leads back to exactly the middle page.
    match = re.search(r'<a href="(\?[^"]+)" rel="prev">', html)
    back = client.get("/editor/subscribers" + match.group(1).replace("&amp;", "&")).text
    assert emails_on(back) == pages[1]


def test_a_broken_page_link_or_status_is_a_clear_400(app):
    client = editor_client(app)
    assert client.get("/editor/subscribers?after=abc").status_code == 400
    assert client.get("/editor/subscribers?status=vip").status_code == 400
    assert client.get("/editor/subscribers/999999").status_code == 404


def test_a_persons_page_shows_their_history_and_deliveries(app):
    result = subscribe(db.session, "lin@example.com", "Lin", ip="203.0.113.9")
    db.session.commit()
    sub = db.session.get(Subscriber, result.subscriber_id)
    sub.status = "confirmed"
    sub.confirmed_at = utcnow()
    issue = Issue(
        slug="first", subject="Tip one: shell history", body_md="x", status=IssueStatus.SENT
    )
    db.session.add(issue)
    db.session.flush()
    db.session.add(
        Delivery(
            issue_id=issue.id,
            subscriber_id=sub.id,
            status=DeliveryStatus.SENT,
            attempts=1,
            sent_at=utcnow() - timedelta(days=1),
        )
    )
    db.session.commit()
    unsubscribe(db.session, sub.id, ip="198.51.100.4")
    db.session.commit()

    html = editor_client(app).get(f"/editor/subscribers/{sub.id}").text
    assert "lin@example.com" in html and "203.0.113.9" in html and "198.51.100.4" in html
    history = html[html.index('id="history"') : html.index('id="deliveries"')]
    assert "Signed up" in history and "Unsubscribed" in history
    assert "Confirmation mail sent" in history
    assert "Tip one: shell history" in html and ">sent<" in html


def test_erase_asks_first_then_removes_every_row_with_the_person(app, make_subscriber):
    sub = make_subscriber("gone@example.com", "confirmed", "Gone Person")
    keep = make_subscriber("stay@example.com", "confirmed", "Stay")
    issue = Issue(slug="i", subject="S", body_md="b", status=IssueStatus.SENT)
    db.session.add(issue)
    db.session.add(Webhook(url="http://127.0.0.1:9/", secret="s", events="subscriber.confirmed"))
    db.session.flush()
    db.session.add(Delivery(issue_id=issue.id, subscriber_id=sub.id, status=DeliveryStatus.SENT))
    db.session.add(SubscriberEvent(subscriber_id=sub.id, kind="edited", detail="x"))
    emit(
        db.session,
        "subscriber.confirmed",
        {"subscriber_id": sub.id, "email": sub.email, "name": sub.name},
    )
    emit(
        db.session,
        "subscriber.confirmed",
        {"subscriber_id": keep.id, "email": keep.email, "name": keep.name},
    )
    db.session.commit()
    sub_id = sub.id
    client = editor_client(app)

    ask = client.get(f"/editor/subscribers/{sub_id}/erase")
    assert "cannot be undone" in ask.text
    token = csrf_from(ask.text)
    # A wrong confirmation changes nothing.
    wrong = client.post(
        f"/editor/subscribers/{sub_id}/erase",
        data={"csrf_token": token, "confirm_email": "someone@else.com"},
    )
    assert wrong.status_code == 400
    assert db.session.get(Subscriber, sub_id) is not None
    # Without the CSRF token: refused.
    assert (
        client.post(
            f"/editor/subscribers/{sub_id}/erase", data={"confirm_email": "gone@example.com"}
        ).status_code
        == 400
    )

    done = client.post(
        f"/editor/subscribers/{sub_id}/erase",
        data={"csrf_token": token, "confirm_email": "gone@example.com"},
        follow_redirects=True,
    )
    assert "was erased" in done.text
    db.session.expire_all()
    assert db.session.get(Subscriber, sub_id) is None
    assert (
        db.session.scalar(
            sa.select(sa.func.count())
            .select_from(SubscriberEvent)
            .where(SubscriberEvent.subscriber_id == sub_id)
        )
        == 0
    )
    payloads = db.session.scalars(sa.select(WebhookDelivery.payload)).all()
    assert len(payloads) == 1 and "stay@example.com" in payloads[0]
    assert not any("gone@example.com" in p or "Gone Person" in p for p in payloads)
    delivery = db.session.scalar(sa.select(Delivery))
    assert delivery.subscriber_id is None and delivery.status == DeliveryStatus.SENT
    assert emails_on(client.get("/editor/subscribers").text) == ["stay@example.com"]


def test_export_streams_the_current_filter_as_csv(app, make_subscriber):
    make_subscriber("a@example.com", "confirmed", "=HYPERLINK(1)")
    make_subscriber("b@example.com", "pending")
    client = editor_client(app)
    response = client.get("/editor/subscribers/export.csv?status=confirmed")
    assert response.status_code == 200 and response.mimetype == "text/csv"
    assert response.is_streamed
    lines = response.get_data(as_text=True).splitlines()
    assert lines[0].startswith("email,name,status,created_at")
    assert len(lines) == 2 and lines[1].startswith("a@example.com,'=HYPERLINK(1),confirmed")
    everyone = client.get("/editor/subscribers/export.csv").get_data(as_text=True)
    assert len(everyone.splitlines()) == 3


def test_the_export_takes_wildcards_literally_like_the_list(app, make_subscriber):
    make_subscriber("under_score@example.com", "confirmed", "Ann")
    make_subscriber("plain@example.com", "confirmed", "100% sure")
    make_subscriber("other@example.com", "pending", "Bob")
    client = editor_client(app)
    for q, expected in (("_", ["under_score@example.com"]), ("%", ["plain@example.com"])):
        query = urlencode({"q": q})
        listed = emails_on(client.get(f"/editor/subscribers?{query}").text)
        exported = client.get(f"/editor/subscribers/export.csv?{query}").get_data(as_text=True)
        rows = [line.split(",")[0] for line in exported.splitlines()[1:]]
        assert listed == rows == expected, q


def test_a_nul_in_the_search_is_a_400_not_a_crash(app):
    assert editor_client(app).get("/editor/subscribers?q=a%00b").status_code == 400
