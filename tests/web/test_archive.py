"""Sent issues are public in the archive and the Atom feed; nothing else is, nothing personal."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from datetime import timedelta
from html import unescape

from newsletter.extensions import db
from newsletter.issues import actions as issues
from newsletter.models import Issue, IssueStatus, utcnow
from newsletter.tasks import dispatch
from tests.helpers import links

ATOM = "{http://www.w3.org/2005/Atom}"


def sent_issue(subject: str, body: str = "A **tip**.", days_ago: int = 0) -> Issue:
    issue = issues.create_issue(subject, body)
    issue.status = IssueStatus.SENT
    issue.queued_at = issue.sent_at = utcnow() - timedelta(days=days_ago)
    db.session.commit()
    return issue


def test_the_archive_lists_sent_issues_newest_first_and_nothing_else(app, client):
    sent_issue("Old tip", days_ago=14)
    sent_issue("New tip", days_ago=0)
    issues.create_issue("Secret draft", "not yet")
    scheduled = issues.create_issue("Scheduled tip", "later")
    dispatch.send_issue(scheduled.id, at=utcnow() + timedelta(days=1))
    cancelled = issues.create_issue("Cancelled tip", "never")
    issues.cancel_issue(cancelled.id)
    html = client.get("/archive").get_data(as_text=True)
    assert html.index("New tip") < html.index("Old tip")
    for hidden in ("Secret draft", "Scheduled tip", "Cancelled tip"):
        assert hidden not in html
    for hidden in (scheduled, cancelled):
        assert client.get(f"/archive/{hidden.slug}").status_code == 404
        assert client.get(f"/archive/{hidden.id}").status_code == 404


def test_an_issue_page_shows_the_sanitised_body_by_slug_or_id(app, client):
    body = (
        "Hello <script>alert(1)</script> <img src=x onerror=alert(2)> {{ 7*7 }}\n\n"
        "[a](javascript:x)"
    )
    issue = sent_issue("Safe page")
    issue.body_md = body  # stored before merge fields were checked: shown, never evaluated
    db.session.commit()
    for key in (issue.slug, str(issue.id)):
        response = client.get(f"/archive/{key}")
        assert response.status_code == 200
        html = response.get_data(as_text=True)
        assert "<h1>Safe page</h1>" in html
        assert "<script>alert" not in html and "onerror" not in html
        assert "javascript:" not in html
        assert "{{ 7*7 }}" in html


def test_unknown_archive_addresses_are_404_pages(app, client):
    for url in ("/archive/nope", "/archive/12345", "/archive/" + "x" * 300, "/archive?page=99"):
        response = client.get(url)
        assert response.status_code == 404, url
        assert "<h1>Not Found</h1>" in response.get_data(as_text=True)
    assert client.get("/archive?page=0").status_code == 404
    assert client.get("/archive?page=abc").status_code == 200  # treated as the first page


def test_the_archive_pages_after_twenty_issues(app, client):
    for n in range(22):
        sent_issue(f"Tip number {n:02d}", days_ago=n)
    first = client.get("/archive").get_data(as_text=True)
    assert "Tip number 00" in first and "Tip number 19" in first
    assert "Tip number 20" not in first
    assert 'href="/archive?page=2"' in first
    second = client.get("/archive?page=2").get_data(as_text=True)
    assert "Tip number 20" in second and "Tip number 21" in second
    assert "Tip number 00" not in second


def test_the_feed_is_valid_atom_with_absolute_links(app, client):
    sent_issue("Older & wiser", "Body <b>one</b>", days_ago=7)
    sent_issue("Newest <tip>", "Body **two**")
    issues.create_issue("Draft", "hidden")
    response = client.get("/feed.xml")
    assert response.status_code == 200
    assert response.mimetype == "application/atom+xml"
    feed = ET.fromstring(response.data)
    assert feed.tag == f"{ATOM}feed"
    assert feed.findtext(f"{ATOM}title") == "Tip of the Week"
    assert feed.findtext(f"{ATOM}id")
    assert feed.findtext(f"{ATOM}updated")
    self_link = [link for link in feed.findall(f"{ATOM}link") if link.get("rel") == "self"]
    assert self_link[0].get("href") == "http://newsletter.test/feed.xml"
    entries = feed.findall(f"{ATOM}entry")
    assert [e.findtext(f"{ATOM}title") for e in entries] == ["Newest <tip>", "Older & wiser"]
    ids = {e.findtext(f"{ATOM}id") for e in entries}
    assert len(ids) == 2
    newest = entries[0]
    assert newest.find(f"{ATOM}link").get("href") == "http://newsletter.test/archive/newest-tip"
    content = newest.find(f"{ATOM}content")
    assert content.get("type") == "html"
    assert "<strong>two</strong>" in content.text
    assert re.match(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$", newest.findtext(f"{ATOM}updated"))
    assert feed.findtext(f"{ATOM}updated") == newest.findtext(f"{ATOM}updated")


def test_an_empty_feed_is_still_valid_atom(app, client):
    feed = ET.fromstring(client.get("/feed.xml").data)
    assert feed.findall(f"{ATOM}entry") == []
    assert feed.findtext(f"{ATOM}updated")


def test_the_view_in_browser_link_of_a_sent_mail_opens_the_issue_without_personal_data(
    app, client, make_subscriber, run_jobs, inbox
):
    make_subscriber("reader@example.com", name="Rita Reader")
    issue = issues.create_issue("Browser view", "Read me **online**.")
    dispatch.send_issue(issue.id)
    run_jobs()
    (msg,) = inbox.wait_for(1)
    view = next(u for u in links(msg) if "/archive/" in u)
    assert view.startswith("http://newsletter.test/archive/")
    unsubscribe = next(u for u in links(msg) if "/unsubscribe/" in u)
    html = client.get(view.removeprefix("http://newsletter.test")).get_data(as_text=True)
    assert "Browser view" in html and "<strong>online</strong>" in html
    assert "reader@example.com" not in html and "Rita" not in html
    assert unsubscribe.rsplit("/", 1)[1] not in html


def test_an_issue_is_public_while_it_is_still_sending(app, client, make_subscriber):
    make_subscriber()
    issue = issues.create_issue("In flight", "Going out now")
    dispatch.send_issue(issue.id)
    assert db.session.get(Issue, issue.id).status is IssueStatus.SENDING
    assert client.get(f"/archive/{issue.slug}").status_code == 200
    assert "In flight" in client.get("/archive").get_data(as_text=True)


def test_a_merge_field_in_the_subject_is_shown_to_the_public_as_its_fallback(app, client):
    with_default = sent_issue("Hi {{ name | default('there') }}: a tip", "Hi {{ name }}, *read*.")
    sent_issue("{{ name }}, five tips", days_ago=1)
    sent_issue("Hi {{ name }}!", days_ago=2)
    page = unescape(client.get(f"/archive/{with_default.slug}").get_data(as_text=True))
    assert with_default.slug == "hi-there-a-tip"
    assert "<title>Hi there: a tip · " in page and "<h1>Hi there: a tip</h1>" in page
    listed = unescape(client.get("/archive").get_data(as_text=True))
    front = unescape(client.get("/").get_data(as_text=True))
    feed = ET.fromstring(client.get("/feed.xml").data)
    titles = [e.findtext(f"{ATOM}title") for e in feed.iter(f"{ATOM}entry")]
    assert titles == ["Hi there: a tip", "five tips", "Hi!"]
    for html in (page, listed, front):
        assert "{{" not in html and "name |" not in html
    for title in titles:
        assert f">{title}</a>" in listed
    assert ">Hi there: a tip</a>" in front
    assert "read." in listed  # the excerpt shows no field either
    # The editor's own lists keep what was written.
    assert "{{" in with_default.subject
