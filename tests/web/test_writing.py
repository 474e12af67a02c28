"""The live preview and autosave endpoints: login and CSRF required, bad input answered in
JSON, nothing stored by a preview, a queued issue never changed by an autosave."""

from __future__ import annotations

from newsletter.extensions import db
from newsletter.issues.actions import create_issue
from newsletter.models import Issue, IssueStatus
from tests.helpers.editors import editor_client, page_token


def test_the_preview_renders_through_the_mail_builder_and_stores_nothing(app):
    client = editor_client(app)
    token = page_token(client, "/editor/issues/new")
    answer = client.post(
        "/editor/preview",
        data={"csrf_token": token, "subject": "Hi", "body_md": "**bold** <script>x</script>"},
    )
    assert answer.status_code == 200
    found = answer.get_json()
    assert "<strong>bold</strong>" in found["html"] and "<script>" not in found["html"]
    assert "Unsubscribe with one click" in found["text"]
    assert found["bytes"] > 1000 and found["clipped"] is False
    big = client.post(
        "/editor/preview",
        data={"csrf_token": token, "subject": "Hi", "body_md": "word " * 25_000},
    ).get_json()
    assert big["clipped"] is True
    bad = client.post(
        "/editor/preview",
        data={"csrf_token": token, "subject": "Hi", "body_md": "x", "preheader": "a\x07"},
    )
    assert bad.status_code == 400 and "control character" in bad.get_json()["error"]
    assert db.session.query(Issue).count() == 0


def test_the_endpoints_need_a_login_and_a_csrf_token(app):
    issue = create_issue("S", "B")
    anonymous = app.test_client().post("/editor/preview", data={"body_md": "x"})
    assert anonymous.status_code in (302, 400)
    client = editor_client(app)
    no_token = client.post(
        f"/editor/issues/{issue.id}/autosave", data={"subject": "X", "body_md": "Y"}
    )
    assert no_token.status_code == 400
    db.session.refresh(issue)
    assert issue.subject == "S"


def test_autosave_saves_a_draft_and_refuses_a_queued_issue(app):
    client = editor_client(app)
    issue = create_issue("S", "B")
    token = page_token(client, f"/editor/issues/{issue.id}")
    saved = client.post(
        f"/editor/issues/{issue.id}/autosave",
        data={"csrf_token": token, "subject": "S2", "body_md": "B2", "preheader": "P"},
    )
    assert saved.status_code == 200 and saved.get_json()["saved"]
    db.session.expire_all()
    stored = db.session.get(Issue, issue.id)
    assert (stored.subject, stored.body_md, stored.preheader) == ("S2", "B2", "P")
    empty = client.post(
        f"/editor/issues/{issue.id}/autosave",
        data={"csrf_token": token, "subject": "", "body_md": "B3"},
    )
    assert empty.status_code == 422 and empty.get_json()["error"] == "The subject is empty."
    stored.status = IssueStatus.SENT
    db.session.commit()
    late = client.post(
        f"/editor/issues/{issue.id}/autosave",
        data={"csrf_token": token, "subject": "S4", "body_md": "B4"},
    )
    assert late.status_code == 409 and not late.get_json()["saved"]
    db.session.expire_all()
    assert db.session.get(Issue, issue.id).body_md == "B2"
