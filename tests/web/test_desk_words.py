"""The desk speaks to the editor: history in words, a 413 that leads back to the editor, and
an issue's long body refused by its own form with the text kept."""

from __future__ import annotations

from newsletter.extensions import db
from newsletter.models import Issue
from newsletter.subscribers.manage import Reason, unsubscribe
from tests.helpers.editors import editor_client, page_token


def test_history_codes_are_shown_in_words(app, make_subscriber):
    sub = make_subscriber("lin@example.com")
    unsubscribe(db.session, sub.id, reason=Reason.TOO_MANY, detail="page")
    db.session.commit()
    html = editor_client(app).get(f"/editor/subscribers/{sub.id}").text
    history = html[html.index('id="history"') :].split("</table>")[0]
    assert "page, too_many" not in history and "too_many" not in history
    assert "on the unsubscribe page; reason: too many emails" in history
    assert "Unsubscribed" in history


def test_a_body_past_the_limit_is_refused_by_the_form_with_the_text_kept(app):
    client = editor_client(app)
    token = page_token(client, "/editor/issues/new")
    long_ok = "word " * 20_000  # 100 KB: past the app's 64 KB a field, within MAX_BODY
    saved = client.post(
        "/editor/issues/new", data={"csrf_token": token, "subject": "Long", "body_md": long_ok}
    )
    assert saved.status_code == 302
    assert db.session.query(Issue).one().body_md == long_ok
    too_long = "é" * 200_001
    refused = client.post(
        "/editor/issues/new", data={"csrf_token": token, "subject": "Longer", "body_md": too_long}
    )
    assert refused.status_code == 400
    assert "The body is longer than 200000 characters." in refused.text
    assert too_long in refused.text  # the text is kept in the form
    assert db.session.query(Issue).count() == 1


def test_a_413_on_an_editor_page_speaks_to_the_editor_and_links_back(app):
    client = editor_client(app)
    token = page_token(client, "/editor/issues/new")
    huge = "x" * (11 * 1024 * 1024)
    answer = client.post(
        "/editor/issues/new", data={"csrf_token": token, "subject": "S", "body_md": huge}
    )
    assert answer.status_code == 413
    assert "Request Entity Too Large" not in answer.text
    assert "That was more than one form can take" in answer.text
    assert "Nothing was saved or changed" in answer.text
    assert 'href="/editor/"' in answer.text and "Your text is still in the page" in answer.text
    assert "Back to the front page" not in answer.text
    assert db.session.query(Issue).count() == 0
    # A reader's page keeps the reader's error page.
    public = app.test_client().post("/subscribe", data={"email": "x" * (11 * 1024 * 1024)})
    assert public.status_code == 413 and "Back to the front page" in public.text
