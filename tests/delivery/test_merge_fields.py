"""Merge fields: each reader's copy says their name, or the fallback; nothing else is allowed."""

from __future__ import annotations

import pytest

from newsletter.delivery import message
from newsletter.errors import Invalid
from newsletter.extensions import db
from newsletter.issues.actions import create_issue, send_test, update_issue
from newsletter.models import Issue
from newsletter.services import mailer
from newsletter.tasks.dispatch import send_issue
from tests.helpers import html_part, text_part
from tests.helpers.editors import bearer, editor_client, page_token

BODY = "Hi {{ name | default('there') }},\n\ntry `git bisect` today."


def test_each_reader_gets_their_name_or_the_fallback_at_the_sink(
    app, make_subscriber, run_jobs, inbox
):
    make_subscriber("ana@example.com", name="Ana")
    make_subscriber("anon@example.com", name="")
    make_subscriber("bo@example.com", name="<b>Bo & Co</b>")
    issue = create_issue("{{ name | default('Friend') }}, a tip", BODY)
    send_issue(issue.id)
    run_jobs()
    got = {m["To"]: m for m in inbox.wait_for(3)}
    ana, anon, bo = got["ana@example.com"], got["anon@example.com"], got["bo@example.com"]
    assert ana["Subject"] == "Ana, a tip" and anon["Subject"] == "Friend, a tip"
    assert "Hi Ana," in text_part(ana) and "Hi Ana," in html_part(ana)
    assert "Hi there," in text_part(anon) and "Hi there," in html_part(anon)
    assert "{{" not in text_part(ana) + html_part(ana) + text_part(anon)
    assert "MERGE" not in text_part(anon) + html_part(anon)
    # Written as text in the text part, escaped in the HTML part: a name is never markup.
    assert "Hi <b>Bo & Co</b>," in text_part(bo)
    assert "Hi &lt;b&gt;Bo &amp; Co&lt;/b&gt;," in html_part(bo)
    assert "<b>Bo" not in html_part(bo)
    assert bo["Subject"] == "<b>Bo & Co</b>, a tip"


@pytest.mark.parametrize(
    "body",
    [
        "Hi {{ name.__class__ }}",
        "Hi {{ name.__class__.__mro__[1].__subclasses__() }}",
        "Hi {{ config }}",
        "Hi {{ email }}",
        "Hi {{ name | attr('upper') }}",
        "Hi {{ name | default(name.upper()) }}",
        "Hi {{ name | upper }}",
        "{% for x in range(10**9) %}x{% endfor %}",
        "Hi {{ name }",
        "Hi {{ 'a' * 100000 }}",
    ],
)
def test_a_field_that_is_not_the_name_is_refused_and_nothing_is_stored(app, body):
    with pytest.raises(Invalid) as refused:
        create_issue("Subject", body)
    assert "merge field" in refused.value.message
    assert db.session.query(Issue).count() == 0
    issue = create_issue("Subject", "Plain")
    with pytest.raises(Invalid):
        update_issue(issue.id, "Subject {{ name.__init__ }}", "Plain")
    db.session.expire_all()
    assert db.session.get(Issue, issue.id).subject == "Subject"


def test_the_editor_form_shows_the_error_and_stores_nothing(app):
    client = editor_client(app)
    token = page_token(client, "/editor/issues/new")
    answer = client.post(
        "/editor/issues/new",
        data={"csrf_token": token, "subject": "S", "body_md": "Hi {{ name.__class__ }}"},
    )
    assert answer.status_code == 400  # the form again, with the error and the text kept
    assert "is not a merge field this newsletter knows" in answer.get_data(as_text=True)
    assert db.session.query(Issue).count() == 0
    preview = client.post(
        "/editor/preview",
        data={"csrf_token": token, "subject": "S", "body_md": "Hi {{ config }}"},
    )
    assert preview.status_code == 400 and "merge field" in preview.get_json()["error"]


def test_the_previews_and_the_test_mail_show_a_readers_name(app, make_subscriber, inbox):
    client = editor_client(app)  # editor@example.org; a reader too, named Edna
    make_subscriber("editor@example.org", name="Edna")
    token = page_token(client, "/editor/issues/new")
    live = client.post(
        "/editor/preview", data={"csrf_token": token, "subject": "S", "body_md": BODY}
    ).get_json()
    assert "Hi Edna," in live["html"] and "Hi Edna," in live["text"]
    issue = create_issue("S", BODY)
    shown = client.get(f"/editor/issues/{issue.id}/preview").get_data(as_text=True)
    assert "Hi Edna," in shown
    make_subscriber("ana@example.com", name="Ana")
    send_test(issue.id, "ana@example.com", mailer())
    send_test(issue.id, "stranger@example.com", mailer())
    got = {m["To"]: m for m in inbox.wait_for(2)}
    assert "Hi Ana," in text_part(got["ana@example.com"])
    assert "Hi there," in html_part(got["stranger@example.com"])


def test_the_archive_shows_the_fallback(app, make_subscriber, run_jobs, inbox):
    make_subscriber("ana@example.com", name="Ana")
    issue = create_issue("Archived", BODY)
    send_issue(issue.id)
    run_jobs()
    inbox.wait_for(1)
    page = app.test_client().get(f"/archive/{issue.slug}").get_data(as_text=True)
    assert "Hi there," in page and "{{" not in page


def test_without_a_field_a_copy_is_built_exactly_as_before(app):
    issue = create_issue("Plain", "No fields here, {braces} are fine.")
    built = message.issue_message(mailer(), issue, b"key")
    assert built._fields == ()
    one = built.bytes_for(7, "a@example.com", "tok", message_id="<x@y>", name="Ana")
    two = built.bytes_for(7, "a@example.com", "tok", message_id="<x@y>")
    strip = [line for line in one.split(b"\r\n") if not line.startswith(b"Date:")]
    assert strip == [line for line in two.split(b"\r\n") if not line.startswith(b"Date:")]
    assert b"{braces}" in one


def test_the_api_refuses_a_field_that_is_not_the_name(app, client):
    answer = client.post(
        "/api/v1/issues",
        json={"subject": "S", "body_md": "Hi {{ name.__class__.__mro__ }}"},
        headers=bearer(app),
    )
    assert answer.status_code == 422  # the API's answer to every invalid field
    assert "is not a merge field this newsletter knows" in answer.get_data(as_text=True)
    assert db.session.query(Issue).count() == 0
