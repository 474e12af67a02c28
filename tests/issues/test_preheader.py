"""The preheader: the line an inbox shows after the subject, hidden at the top of the HTML."""

from __future__ import annotations

import re

import pytest

from newsletter.extensions import db
from newsletter.models import Issue
from newsletter.tasks.dispatch import send_issue
from tests.helpers import csrf_from, html_part, text_part
from tests.helpers.editors import bearer, editor_client

HIDDEN = re.compile(r'<div class="preheader" style="([^"]*)">(.*?)</div>', re.S)


def _preheader_of(html: str) -> tuple[str, str] | None:
    found = HIDDEN.search(html)
    return (found.group(1), found.group(2)) if found else None


def test_cli_preheader_reaches_every_copy_hidden_and_padded(
    app, make_subscriber, run_jobs, inbox, tmp_path
):
    make_subscriber("one@example.com")
    make_subscriber("two@example.com")
    body = tmp_path / "tip.md"
    body.write_text("First words of the body.", encoding="utf-8")
    runner = app.test_cli_runner()
    made = runner.invoke(
        args=[
            "issues", "create", "--subject", "Try rg", "--body-file", str(body),
            "--preheader", "Faster than grep,   and it skips .gitignore",
        ]
    )  # fmt: skip
    assert made.exit_code == 0, made.output
    issue_id = int(made.output.strip().splitlines()[-1])
    send_issue(issue_id)
    run_jobs()
    for msg in inbox.wait_for(2):
        html = html_part(msg)
        style, content = _preheader_of(html)
        assert "display:none" in style.replace(" ", "")
        assert content.startswith("Faster than grep, and it skips .gitignore")
        # Padded with invisible characters so the body's first words stay out of the preview.
        assert content.count("&zwnj;") + content.count("\u200c") >= 50
        # First thing in the body, before the "view in the browser" line and the tip.
        assert html.index("Faster than grep") < html.index("View it in your browser")
        assert html.index("Faster than grep") < html.index("First words of the body.")
        assert "Faster than grep" not in text_part(msg)


def test_without_a_preheader_none_is_added(app, make_subscriber, run_jobs, inbox, tmp_path):
    make_subscriber("one@example.com")
    body = tmp_path / "tip.md"
    body.write_text("Plain body.", encoding="utf-8")
    made = app.test_cli_runner().invoke(
        args=["issues", "create", "--subject", "No line", "--body-file", str(body)]
    )
    send_issue(int(made.output.strip().splitlines()[-1]))
    run_jobs()
    (msg,) = inbox.wait_for(1)
    assert _preheader_of(html_part(msg)) is None
    assert 'class="preheader"' not in html_part(msg)


def test_cli_refuses_a_preheader_too_long_and_stores_nothing(app, tmp_path):
    body = tmp_path / "tip.md"
    body.write_text("Body.", encoding="utf-8")
    result = app.test_cli_runner().invoke(
        args=[
            "issues",
            "create",
            "--subject",
            "S",
            "--body-file",
            str(body),
            "--preheader",
            "x" * 201,
        ]
    )
    assert result.exit_code != 0
    assert "preheader is longer than 200 characters" in result.output
    assert "Traceback" not in result.output
    assert db.session.query(Issue).count() == 0


def test_the_editor_form_saves_the_preheader_and_the_test_copy_carries_it(app, inbox):
    client = editor_client(app)
    page = client.get("/editor/issues/new").text
    assert 'name="preheader"' in page
    made = client.post(
        "/editor/issues/new",
        data={
            "csrf_token": csrf_from(page),
            "subject": "Tip",
            "body_md": "Body",
            "preheader": "Read this one",
        },
    )
    assert made.status_code == 302
    issue = db.session.query(Issue).one()
    assert issue.preheader == "Read this one"
    page = client.get(f"/editor/issues/{issue.id}").text
    assert 'value="Read this one"' in page
    saved = client.post(
        f"/editor/issues/{issue.id}",
        data={
            "csrf_token": csrf_from(page),
            "subject": "Tip",
            "body_md": "Body",
            "preheader": "Changed line",
        },
    )
    assert saved.status_code == 302
    db.session.refresh(issue)
    assert issue.preheader == "Changed line"
    page = client.get(f"/editor/issues/{issue.id}").text
    client.post(
        f"/editor/issues/{issue.id}/test",
        data={"csrf_token": csrf_from(page), "to": "me@example.com"},
    )
    (msg,) = inbox.wait_for(1)
    assert _preheader_of(html_part(msg))[1].startswith("Changed line")
    preview = client.get(f"/editor/issues/{issue.id}/preview").text
    assert "Changed line" in preview


def test_the_editor_form_keeps_the_text_when_the_preheader_is_refused(app):
    client = editor_client(app)
    page = client.get("/editor/issues/new").text
    refused = client.post(
        "/editor/issues/new",
        data={
            "csrf_token": csrf_from(page),
            "subject": "Tip",
            "body_md": "My long body",
            "preheader": "x\x07y",
        },
    )
    assert refused.status_code == 400
    assert "preheader holds a control character" in refused.text
    assert "My long body" in refused.text
    assert db.session.query(Issue).count() == 0


def test_the_api_creates_changes_and_documents_the_preheader(app):
    client, auth = app.test_client(), bearer(app)
    made = client.post(
        "/api/v1/issues",
        headers=auth,
        json={"subject": "S", "body_md": "B", "preheader": "Inbox line"},
    )
    assert made.status_code == 201 and made.get_json()["preheader"] == "Inbox line"
    iid = made.get_json()["id"]
    kept = client.patch(f"/api/v1/issues/{iid}", headers=auth, json={"subject": "S2"})
    assert kept.get_json()["preheader"] == "Inbox line"
    changed = client.patch(f"/api/v1/issues/{iid}", headers=auth, json={"preheader": ""})
    assert changed.get_json()["preheader"] == ""
    html = client.get(f"/api/v1/issues/{iid}/preview", headers=auth).get_json()["html"]
    assert 'class="preheader"' not in html
    too_long = client.patch(f"/api/v1/issues/{iid}", headers=auth, json={"preheader": "y" * 201})
    assert too_long.status_code == 422 and too_long.get_json()["error"]["field"] == "preheader"
    schema = client.get("/api/v1/openapi.json").get_json()["components"]["schemas"]
    assert schema["IssueCreate"]["properties"]["preheader"]["maxLength"] == 200
    assert "preheader" in schema["IssuePatch"]["properties"]
    assert "preheader" in schema["Issue"]["properties"]


@pytest.mark.parametrize("value", ["a\x00b", 7])
def test_the_api_refuses_a_bad_preheader_and_stores_nothing(app, value):
    client, auth = app.test_client(), bearer(app)
    made = client.post(
        "/api/v1/issues", headers=auth, json={"subject": "S", "body_md": "B", "preheader": value}
    )
    assert made.status_code == 422
    assert db.session.query(Issue).count() == 0
