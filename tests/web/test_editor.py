"""An editor writes an issue, previews it as the email, tests it, queues or schedules it."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from html import unescape
from zoneinfo import ZoneInfo

import pytest

from newsletter.extensions import db
from newsletter.models import Delivery, Issue, IssueStatus
from tests.helpers import html_part, text_part
from tests.helpers.editors import add_editor, login, page_token, post_form

XSS_BODY = """# Hello

<script>alert('x')</script>
<img src="x" onerror="alert(1)">
[click](javascript:alert(2))
<a href="https://example.org/ok" onclick="steal()">fine link</a>

Merged, escaped: {{ name | default('<b>you</b>') }}
"""


@pytest.fixture
def editor(app, client):
    add_editor()
    assert login(client).status_code == 302
    return client


def write(client, subject="Tip one", body="Use **tabs** wisely."):
    response = post_form(
        client, "/editor/issues/new", "/editor/issues/new", subject=subject, body_md=body
    )
    assert response.status_code == 302, response.get_data(as_text=True)
    issue_id = int(re.search(r"/editor/issues/(\d+)$", response.headers["Location"]).group(1))
    return issue_id


def issue(issue_id) -> Issue:
    db.session.expire_all()
    return db.session.get(Issue, issue_id)


def test_a_new_issue_is_a_draft_listed_on_the_dashboard(editor):
    issue_id = write(editor, "Keyboard shortcuts", "Press **Ctrl+K**.")
    page = editor.get(f"/editor/issues/{issue_id}").get_data(as_text=True)
    assert "Draft saved" in page
    assert 'value="Keyboard shortcuts"' in page
    dashboard = editor.get("/editor/").get_data(as_text=True)
    assert "Keyboard shortcuts" in dashboard and "draft" in dashboard
    for link in ("/editor/subscribers", "/editor/stats", "/editor/tokens", "/editor/webhooks"):
        assert f'href="{link}"' in dashboard


def test_an_empty_subject_is_refused_and_nothing_is_saved(editor):
    response = post_form(
        editor, "/editor/issues/new", "/editor/issues/new", subject="  ", body_md="text"
    )
    assert response.status_code == 400
    assert "The subject is empty." in response.get_data(as_text=True)
    assert db.session.query(Issue).count() == 0


def test_a_form_without_csrf_token_changes_nothing(editor):
    response = editor.post("/editor/issues/new", data={"subject": "S", "body_md": "B"})
    assert response.status_code == 400
    assert db.session.query(Issue).count() == 0


def test_an_issue_is_editable_until_it_is_queued(editor, make_subscriber, run_jobs):
    make_subscriber("ann@example.com")
    issue_id = write(editor)
    page = f"/editor/issues/{issue_id}"
    response = post_form(editor, page, page, subject="Tip one, better", body_md="New *body*")
    assert response.status_code == 302
    assert issue(issue_id).subject == "Tip one, better"
    assert issue(issue_id).body_md == "New *body*"
    assert post_form(editor, page, f"{page}/send").status_code == 302
    html = editor.get(page).get_data(as_text=True)
    assert "can no longer be edited" in html
    response = post_form(editor, "/editor/issues/new", page, subject="Late", body_md="Late")
    assert response.status_code == 409
    assert "can no longer be edited" in response.get_data(as_text=True)
    assert issue(issue_id).subject == "Tip one, better"


def test_the_preview_shows_the_email_as_sent_with_script_and_handlers_removed(editor):
    issue_id = write(editor, "Safety first", XSS_BODY)
    page = editor.get(f"/editor/issues/{issue_id}/preview").get_data(as_text=True)
    frame = re.search(r'<iframe[^>]*sandbox=""[^>]*srcdoc="([^"]*)"', page)
    assert frame, "the HTML part sits in a sandboxed frame"
    mail_html = unescape(frame.group(1))
    assert "Safety first" in mail_html
    assert "<script" not in mail_html
    assert "onerror" not in mail_html and "onclick" not in mail_html
    assert "javascript:" not in mail_html
    assert 'href="https://example.org/ok"' in mail_html
    assert "Merged, escaped: &lt;b&gt;you&lt;/b&gt;" in mail_html  # a name is text
    assert "http://newsletter.test/unsubscribe/" in mail_html
    text = unescape(re.search(r'<pre class="mail">(.*?)</pre>', page, re.S).group(1))
    assert "Merged, escaped: <b>you</b>" in text
    assert "View it in your browser:\nhttp://newsletter.test/archive/safety-first" in text
    # The page itself runs only its own nonce-tagged scripts.
    assert (
        "script-src 'nonce-"
        in editor.get(f"/editor/issues/{issue_id}/preview").headers["Content-Security-Policy"]
    )


def test_a_test_send_reaches_the_mail_server(editor, inbox):
    issue_id = write(editor, "Tested tip", "Body for {{ name | default('a stranger') }}")
    page = f"/editor/issues/{issue_id}"
    response = post_form(editor, page, f"{page}/test", to="me@example.net")
    assert response.status_code == 302
    assert "A test copy went to me@example.net" in editor.get(page).get_data(as_text=True)
    (msg,) = inbox.wait_for(1)
    assert msg["To"] == "me@example.net"
    assert "Tested tip" in msg["Subject"]
    assert "Body for a stranger" in text_part(msg) and "Body for a stranger" in html_part(msg)
    assert issue(issue_id).status is IssueStatus.DRAFT  # a test sends nobody else anything


def test_a_test_send_to_a_bad_address_says_so(editor, inbox):
    issue_id = write(editor)
    page = f"/editor/issues/{issue_id}"
    response = post_form(editor, page, f"{page}/test", to="not an address")
    assert response.status_code == 409
    assert "Not a valid address" in response.get_data(as_text=True)
    assert inbox.messages == []


def test_queueing_sends_every_confirmed_subscriber_one_copy(
    editor, make_subscriber, run_jobs, inbox
):
    for n in range(3):
        make_subscriber(f"reader{n}@example.com")
    make_subscriber("waiting@example.com", status="pending")
    issue_id = write(editor)
    page = f"/editor/issues/{issue_id}"
    assert post_form(editor, page, f"{page}/send").status_code == 302
    assert post_form(editor, page, f"{page}/send").status_code == 302  # a second click
    progress = editor.get(f"{page}/progress.json").get_json()
    assert progress["audience"] == 3 and progress["status"] == "sending"
    assert progress["percent"] == 0
    run_jobs()
    inbox.wait_for(3)
    assert sorted(rcpt for _f, (rcpt,) in inbox.envelopes) == [
        "reader0@example.com",
        "reader1@example.com",
        "reader2@example.com",
    ]
    progress = editor.get(f"{page}/progress.json").get_json()
    assert progress["sent"] == 3 and progress["percent"] == 100 and progress["finished"]
    assert progress["status"] == "sent"
    assert db.session.query(Delivery).count() == 3
    html = editor.get(page).get_data(as_text=True)
    assert 'aria-valuenow="100.0"' in html


def test_queueing_with_no_confirmed_subscribers_is_refused(editor):
    issue_id = write(editor)
    page = f"/editor/issues/{issue_id}"
    response = post_form(editor, page, f"{page}/send")
    assert response.status_code == 409
    assert "no confirmed subscribers" in response.get_data(as_text=True)
    assert issue(issue_id).status is IssueStatus.DRAFT


def test_scheduling_converts_the_chosen_time_zone_to_utc(editor):
    issue_id = write(editor)
    page = f"/editor/issues/{issue_id}"
    year = datetime.now(UTC).year + 1
    response = post_form(
        editor, page, f"{page}/schedule", at=f"{year}-07-01T09:30", tz="Europe/Berlin"
    )
    assert response.status_code == 302
    found = issue(issue_id)
    assert found.status is IssueStatus.SCHEDULED
    expected = datetime(year, 7, 1, 9, 30, tzinfo=ZoneInfo("Europe/Berlin"))
    assert found.scheduled_at == expected.astimezone(UTC)
    assert found.scheduled_at.hour == 7  # CEST is UTC+2
    # No zone on the account yet: the page says it in UTC (the browser rewrites it), UTC on hover.
    assert f'title="{year}-07-01 07:30 UTC"' in editor.get(page).get_data(as_text=True)


@pytest.mark.parametrize(
    ("at", "tz", "message"),
    [
        ("2001-01-01T09:00", "UTC", "That time has passed"),
        ("tomorrow", "UTC", "Enter a date and time"),
        ("2099-01-01T09:00", "Mars/Olympus", "“Mars/Olympus” is not a time zone"),
        ("2099-01-01T09:00", "../../etc/passwd", "is not a time zone"),
    ],
)
def test_a_bad_schedule_is_refused_and_changes_nothing(editor, at, tz, message):
    issue_id = write(editor)
    page = f"/editor/issues/{issue_id}"
    response = post_form(editor, page, f"{page}/schedule", at=at, tz=tz)
    assert response.status_code == 400
    assert message in response.get_data(as_text=True)
    assert issue(issue_id).status is IssueStatus.DRAFT


def test_mark_ready_then_cancel(editor):
    issue_id = write(editor)
    page = f"/editor/issues/{issue_id}"
    assert post_form(editor, page, f"{page}/ready").status_code == 302
    assert issue(issue_id).status is IssueStatus.READY
    assert post_form(editor, page, f"{page}/cancel").status_code == 302
    assert issue(issue_id).status is IssueStatus.CANCELLED
    assert "cancelled" in editor.get(page).get_data(as_text=True)


def test_pause_resume_and_cancel_a_running_send(editor, make_subscriber, run_jobs, inbox):
    for n in range(4):
        make_subscriber(f"reader{n}@example.com")
    issue_id = write(editor)
    page = f"/editor/issues/{issue_id}"
    post_form(editor, page, f"{page}/send")
    assert post_form(editor, page, f"{page}/pause").status_code == 302
    assert issue(issue_id).status is IssueStatus.PAUSED
    assert "Resume" in editor.get(page).get_data(as_text=True)
    run_jobs()
    assert inbox.messages == []  # nothing leaves while paused
    assert post_form(editor, page, f"{page}/resume").status_code == 302
    assert issue(issue_id).status is IssueStatus.SENDING
    assert post_form(editor, page, f"{page}/cancel").status_code == 302
    run_jobs()
    assert issue(issue_id).status is IssueStatus.CANCELLED
    assert inbox.messages == []
    progress = editor.get(f"{page}/progress.json").get_json()
    assert progress["skipped"] == 4 and progress["finished"]
    # Pausing a cancelled issue is a clear refusal, not a crash.
    response = post_form(editor, page, f"{page}/pause")
    assert response.status_code == 409


def test_an_unknown_issue_is_a_404(editor):
    assert editor.get("/editor/issues/999").status_code == 404
    assert editor.get("/editor/issues/999/preview").status_code == 404
    assert editor.get("/editor/issues/999/progress.json").status_code == 404
    token = page_token(editor, "/editor/")
    assert editor.post("/editor/issues/999/send", data={"csrf_token": token}).status_code == 404


def test_the_send_buttons_guard_against_double_submits(editor, make_subscriber):
    make_subscriber()
    issue_id = write(editor)
    html = editor.get(f"/editor/issues/{issue_id}").get_data(as_text=True)
    assert re.search(r'<form[^>]*action="/editor/issues/\d+/send"[^>]*class="once"', html)
    assert "form.dataset.submitted" in html
    assert "Send now to 1 subscriber" in html


def test_the_dashboard_shows_progress_of_a_send(editor, make_subscriber, run_jobs, inbox):
    make_subscriber()
    make_subscriber()
    issue_id = write(editor, "Progress tip")
    page = f"/editor/issues/{issue_id}"
    post_form(editor, page, f"{page}/send")
    run_jobs()
    inbox.wait_for(2)
    html = editor.get("/editor/").get_data(as_text=True)
    assert "2 sent · 0 failed · 0 skipped of 2" in html


def test_the_schedule_form_offers_a_short_zone_list_and_takes_any_typed(editor):
    issue_id = write(editor)
    html = editor.get(f"/editor/issues/{issue_id}").get_data(as_text=True)
    assert 'list="zone-list"' in html and 'value="UTC"' in html
    assert '<option value="America/New_York">' in html
    assert html.count("<option value=") < 60  # short: the common zones, not all 500
    assert 'type="datetime-local"' in html
    page = f"/editor/issues/{issue_id}"
    # Not in the short list, but a real zone: taken.
    response = post_form(
        editor, page, f"{page}/schedule", at="2099-01-01T09:00", tz="Asia/Kathmandu"
    )
    assert response.status_code == 302
    assert issue(issue_id).scheduled_at == datetime(2099, 1, 1, 3, 15, tzinfo=UTC)


def test_scheduled_time_stays_editable(editor):
    issue_id = write(editor)
    page = f"/editor/issues/{issue_id}"
    later = (datetime.now(UTC) + timedelta(days=3)).strftime("%Y-%m-%dT%H:%M")
    post_form(editor, page, f"{page}/schedule", at=later, tz="UTC")
    response = post_form(editor, page, page, subject="Edited while scheduled", body_md="x")
    assert response.status_code == 302
    assert issue(issue_id).subject == "Edited while scheduled"
    assert issue(issue_id).status is IssueStatus.SCHEDULED
