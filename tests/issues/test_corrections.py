"""A sent issue's archive page can be corrected: from the API and the editor's page, logged,
shown as "Updated" on the archive and in the feed, and nobody is mailed again."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from datetime import timedelta
from html import unescape

import pytest
import sqlalchemy as sa

from newsletter.extensions import db
from newsletter.issues import actions as issues
from newsletter.issues.corrections import IssueCorrection
from newsletter.models import Issue, IssueStatus, utcnow
from newsletter.tasks import dispatch
from tests.helpers import truncate_all
from tests.helpers.editors import add_editor, bearer, login, post_form

ATOM = "{http://www.w3.org/2005/Atom}"
BODY = "Use **grep -r** to search.\n\nSee [the manual](https://example.org/grpe).\n\nBye."


def _sent(make_subscriber, run_jobs, inbox, subject="Tip 1: grep", body=BODY) -> Issue:
    make_subscriber("ann@example.com")
    issue = issues.create_issue(subject, body)
    dispatch.send_issue(issue.id)
    run_jobs()
    inbox.wait_for(1)
    found = db.session.get(Issue, issue.id)
    assert found is not None and found.status is IssueStatus.SENT
    found.queued_at = found.sent_at = utcnow() - timedelta(days=1)  # sent yesterday
    db.session.commit()
    return found


def _log() -> list[IssueCorrection]:
    db.session.expire_all()
    return list(db.session.scalars(sa.select(IssueCorrection).order_by(IssueCorrection.id)))


def _entry(client, issue_id: int) -> ET.Element:
    feed = ET.fromstring(client.get("/feed.xml").data)
    for entry in feed.iter(f"{ATOM}entry"):
        if entry.findtext(f"{ATOM}id", "").endswith(f":issue:{issue_id}"):
            return entry
    raise AssertionError("no feed entry for the issue")


def test_the_api_corrects_a_sent_issue_and_nobody_is_mailed_again(
    app, client, make_subscriber, run_jobs, inbox
):
    issue = _sent(make_subscriber, run_jobs, inbox)
    slug, sent_at = issue.slug, issue.sent_at
    assert sent_at is not None
    page = client.get(f"/archive/{slug}").get_data(as_text=True)
    assert 'id="updated"' not in page
    before = _entry(client, issue.id)
    assert before.findtext(f"{ATOM}updated") == before.findtext(f"{ATOM}published")

    auth = bearer(app, "desk")
    fixed_body = BODY.replace("grpe", "grep")
    answer = client.patch(
        f"/api/v1/issues/{issue.id}",
        headers=auth,
        json={"subject": "Tip 1: grep -r", "body_md": fixed_body},
    )
    assert answer.status_code == 200, answer.get_data(as_text=True)
    assert answer.get_json()["subject"] == "Tip 1: grep -r"
    assert answer.get_json()["slug"] == slug  # readers' links keep working
    assert answer.get_json()["status"] == "sent"

    assert run_jobs() == 0 and len(inbox.messages) == 1  # no job, no second mail
    [logged] = _log()
    assert logged.old_subject == "Tip 1: grep" and logged.old_body_md == BODY
    assert logged.by.startswith("api@example.org") and "desk" in logged.by

    page = unescape(client.get(f"/archive/{slug}").get_data(as_text=True))
    assert "<h1>Tip 1: grep -r</h1>" in page
    assert "https://example.org/grep" in page and "grpe" not in page
    assert re.search(r'id="updated" datetime="[^"]+">Updated \w+ \d+, \d{4}<', page), page
    entry = _entry(client, issue.id)
    assert entry.findtext(f"{ATOM}title") == "Tip 1: grep -r"
    assert "https://example.org/grep" in entry.findtext(f"{ATOM}content", "")
    assert entry.findtext(f"{ATOM}published") == before.findtext(f"{ATOM}published")
    assert entry.findtext(f"{ATOM}updated", "") > entry.findtext(f"{ATOM}published", "")

    # The same text again is no change: nothing is logged twice.
    again = client.patch(f"/api/v1/issues/{issue.id}", headers=auth, json={"body_md": fixed_body})
    assert again.status_code == 200 and len(_log()) == 1


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        ({"subject": "  "}, "subject"),
        ({"body_md": ""}, "body_md"),
        ({"body_md": "x" * 200_001}, "body_md"),
        ({"subject": "Hi {{ name.__class__ }}"}, "subject"),
        ({"body_md": "{% for x in y %}"}, "body_md"),
        ({"preheader": "A new line the inbox already showed"}, "preheader"),
    ],
)
def test_a_bad_correction_is_refused_and_nothing_is_stored(
    app, client, make_subscriber, run_jobs, inbox, payload, field
):
    issue = _sent(make_subscriber, run_jobs, inbox)
    answer = client.patch(f"/api/v1/issues/{issue.id}", headers=bearer(app), json=payload)
    assert answer.status_code == 422, answer.get_data(as_text=True)
    assert answer.get_json()["error"]["field"] == field
    assert _log() == []
    stored = db.session.get(Issue, issue.id)
    assert stored is not None and stored.subject == "Tip 1: grep" and stored.body_md == BODY


def test_while_a_send_is_under_way_or_after_a_cancel_it_is_too_late(app, client, make_subscriber):
    make_subscriber("ann@example.com")
    auth = bearer(app)
    paused = issues.create_issue("Paused tip", "Body")
    dispatch.send_issue(paused.id)
    issues.pause_issue(paused.id)
    cancelled = issues.create_issue("Cancelled tip", "Body")
    dispatch.send_issue(cancelled.id, at=utcnow() + timedelta(days=1))
    issues.cancel_issue(cancelled.id)
    for issue_id in (paused.id, cancelled.id):
        late = client.patch(f"/api/v1/issues/{issue_id}", headers=auth, json={"subject": "New"})
        assert late.status_code == 409 and late.get_json()["error"]["code"] == "conflict"
    assert _log() == []


def test_the_editor_corrects_from_the_issue_page_and_sees_the_history(
    app, client, make_subscriber, run_jobs, inbox
):
    issue = _sent(make_subscriber, run_jobs, inbox)
    add_editor()
    assert login(client).status_code == 302
    page = f"/editor/issues/{issue.id}"
    html = client.get(page).get_data(as_text=True)
    assert "Correct the archive page" in html and "can no longer be edited" in html
    assert 'id="corrections"' not in html

    # Bad input: the form again with the error and the text kept; nothing stored.
    refused = post_form(client, page, f"{page}/correct", subject=" ", body_md="Kept text")
    assert refused.status_code == 400
    assert "The subject is empty." in refused.get_data(as_text=True)
    assert "Kept text" in refused.get_data(as_text=True)
    assert _log() == []

    done = post_form(
        client,
        page,
        f"{page}/correct",
        subject="Tip 1: grep",
        body_md=BODY.replace("Bye.", "Ciao."),
    )
    assert done.status_code == 302
    html = unescape(client.get(page).get_data(as_text=True))
    assert "Corrected: the archive page and the feed show the new text. Nobody was mailed." in html
    history = " ".join(html[html.index('id="corrections"') :].split())
    assert "by ed@example.org: body changed" in history
    assert '<span class="del">-Bye.</span><span class="ins">+Ciao.</span>' in history
    assert "<summary>The body before this correction</summary>" in history
    assert "subject “" not in history  # the subject did not change
    assert run_jobs() == 0 and len(inbox.messages) == 1
    public = client.get(f"/archive/{issue.slug}").get_data(as_text=True)
    assert "Ciao." in public and 'id="updated"' in public

    # A draft is not corrected: it is simply edited.
    draft = issues.create_issue("Draft", "Body")
    late = post_form(client, f"/editor/issues/{draft.id}", f"/editor/issues/{draft.id}/correct")
    assert late.status_code == 409 and "only a sent issue" in late.get_data(as_text=True)


def test_a_german_reader_sees_updated_in_german(make_app):
    app = make_app(NEWSLETTER_LANGUAGE="de")
    with app.app_context():
        truncate_all()
        issue = issues.create_issue("Tipp 1", "Nimm **grep**.")
        issue.status, issue.sent_at = IssueStatus.SENT, utcnow()
        db.session.commit()
        client = app.test_client()
        answer = client.patch(
            f"/api/v1/issues/{issue.id}", headers=bearer(app), json={"body_md": "Nimm **rg**."}
        )
        assert answer.status_code == 200
        page = client.get(f"/archive/{issue.slug}").get_data(as_text=True)
        german = r'id="updated" datetime="[^"]+">Aktualisiert am \d+\. \w+ \d{4}<'
        assert re.search(german, page), page
