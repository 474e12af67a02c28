"""A sign-up form for one group: the editor picks a tag, the snippet carries it signed."""

from __future__ import annotations

import html
import logging
import re

from flask import g

from newsletter.extensions import db
from newsletter.models import ConfirmLimit, Subscriber, SubscriberStatus
from newsletter.subscribers.groups import group_value
from newsletter.subscribers.tags import add_tags, tag_names
from tests.helpers import emails_on, text_part
from tests.helpers.editors import editor_client
from tests.helpers.readers import link_to, post_form, subscriber

S = SubscriberStatus


def _tag_someone(tag: str) -> None:
    sub = Subscriber(email="first@example.com", name="First", status=S.CONFIRMED)
    db.session.add(sub)
    db.session.flush()
    add_tags(db.session(), sub.id, [tag], by="test")
    db.session.commit()


def _snippet_fields(page: str) -> dict[str, str]:
    found = re.search(r'<textarea id="snippet"[^>]*>(.*?)</textarea>', page, re.S)
    assert found, "the page shows no snippet"
    snippet = html.unescape(found.group(1))
    return dict(re.findall(r'<input type="hidden" name="([^"]+)" value="([^"]*)"', snippet))


def test_the_embed_page_makes_a_form_for_a_group_and_it_tags_who_signs_up(app):
    _tag_someone("Group 8")
    editor = editor_client(app)
    plain = editor.get("/editor/embed").text
    assert "<option>Group 8</option>" in plain and _snippet_fields(plain) == {}
    page = editor.get("/editor/embed?tag=group+8")
    assert page.status_code == 200 and "gets the tag <strong>Group 8</strong>" in page.text
    fields = _snippet_fields(page.text)
    assert set(fields) == {"group"} and "Group 8" not in fields["group"]

    blog = app.test_client(use_cookies=False)
    answer = blog.post(
        "/embed/subscribe",
        data={"email": "ann@example.com", "name": "Ann", "website": "", **fields},
        headers={"Origin": "https://workshop.example.org"},
    )
    assert answer.status_code == 303 and answer.headers["Location"].endswith("/check-inbox")
    shown = emails_on(editor.get("/editor/subscribers?tag=Group+8").text)
    assert sorted(shown) == ["ann@example.com", "first@example.com"]
    # Our own front-page form takes the same field.
    g.pop("csrf_token", None)  # a new browser: Flask-WTF caches the token on g
    front = app.test_client()
    assert post_form(front, "bo@example.com", **fields).status_code == 303
    shown = emails_on(editor.get("/editor/subscribers?tag=Group+8").text)
    assert "bo@example.com" in shown


def test_a_forged_or_stale_group_adds_no_tag_and_the_sign_up_still_works(app, caplog):
    _tag_someone("Group 8")
    secret = app.config["SECRET_KEY"]
    forged = [
        "Group 8",  # the plain name, unsigned
        group_value("not our key", None, "Group 8"),  # signed under another key
        group_value(secret, None, "Group 8")[:-2] + "xx",  # tampered signature
        group_value(secret, None, "VIP"),  # genuine, but for a tag that does not exist
        "x" * 5000,
    ]
    blog = app.test_client(use_cookies=False)
    with caplog.at_level(logging.WARNING):
        for i, value in enumerate(forged):
            email = f"f{i}@example.com"
            answer = blog.post("/embed/subscribe", data={"email": email, "group": value})
            assert answer.status_code == 303 and answer.headers["Location"].endswith("/check-inbox")
            sub = subscriber(email)
            assert sub is not None and tag_names(db.session(), [sub.id])[sub.id] == []
    assert sum("group" in r.getMessage() or "tag" in r.getMessage() for r in caplog.records) >= 5
    editor = editor_client(app)
    assert emails_on(editor.get("/editor/subscribers?tag=Group+8").text) == ["first@example.com"]
    assert editor.get("/editor/subscribers?tag=VIP").status_code == 404


def test_a_known_address_is_not_tagged_by_a_stranger_and_a_bad_tag_is_refused(app):
    _tag_someone("Group 8")
    editor = editor_client(app)
    fields = _snippet_fields(editor.get("/editor/embed?tag=Group+8").text)
    db.session.add(Subscriber(email="known@example.com", name="Known", status=S.CONFIRMED))
    db.session.commit()
    blog = app.test_client(use_cookies=False)
    assert (
        blog.post("/embed/subscribe", data={"email": "known@example.com", **fields}).status_code
        == 303
    )
    sub = subscriber("known@example.com")
    assert sub is not None and tag_names(db.session(), [sub.id])[sub.id] == []
    refused = editor.get("/editor/embed?tag=%3Cscript%3E")
    assert refused.status_code == 400 and "There is no tag named" in refused.text
    assert "<script>" not in refused.text.split("<body", 1)[1].replace("<script nonce", "")
    assert _snippet_fields(refused.text) == {}


def test_a_known_reader_is_mailed_a_link_that_adds_the_group_when_they_press_its_button(
    app, run_jobs, inbox
):
    _tag_someone("Group 8")
    editor = editor_client(app)
    fields = _snippet_fields(editor.get("/editor/embed?tag=Group+8").text)
    db.session.add(Subscriber(email="known@example.com", name="Kim", status=S.CONFIRMED))
    db.session.commit()
    blog = app.test_client(use_cookies=False)
    for _ in range(2):  # a second sign-up at once mails nothing more (the mailbox's limits)
        answer = blog.post("/embed/subscribe", data={"email": "known@example.com", **fields})
        assert answer.status_code == 303 and answer.headers["Location"].endswith("/check-inbox")
    run_jobs()
    mails = inbox.wait_for(1)
    assert [m["To"] for m in mails] == ["known@example.com"]
    assert mails[0]["Subject"].startswith("Join Group 8 at")
    assert "You are subscribed already, so nothing changed" in " ".join(text_part(mails[0]).split())
    join = link_to(mails[0], "/join/")
    sub = subscriber("known@example.com")
    assert sub is not None and tag_names(db.session(), [sub.id])[sub.id] == []

    reader = app.test_client()
    shown = reader.get(join)
    assert shown.status_code == 200 and 'id="join"' in shown.text and "Join Group 8" in shown.text
    assert tag_names(db.session(), [sub.id])[sub.id] == []  # opening the link changes nothing
    done = reader.post(join)
    assert done.status_code == 200 and "You are in Group 8" in done.text
    assert tag_names(db.session(), [sub.id])[sub.id] == ["Group 8"]
    assert "known@example.com" in emails_on(editor.get("/editor/subscribers?tag=Group+8").text)
    # Pressing again changes nothing more; a changed link changes nothing at all.
    assert reader.post(join).status_code == 200
    assert reader.post(join[:-3] + "abc").status_code == 400
    other = subscriber("first@example.com")
    assert other is not None and tag_names(db.session(), [other.id])[other.id] == ["Group 8"]
    # Already in the group: a sign-up through its form mails nothing.
    inbox.clear()
    db.session.query(ConfirmLimit).delete()
    db.session.commit()
    blog.post("/embed/subscribe", data={"email": "known@example.com", **fields})
    assert run_jobs() == 0 and inbox.to("known@example.com") == []


def test_someone_not_yet_confirmed_gets_the_group_and_it_counts_once_they_confirm(
    app, run_jobs, inbox
):
    _tag_someone("Group 8")
    editor = editor_client(app)
    fields = _snippet_fields(editor.get("/editor/embed?tag=Group+8").text)
    blog = app.test_client(use_cookies=False)
    # Pam signed up on the plain form and has not confirmed yet; Una had left the list.
    assert blog.post("/embed/subscribe", data={"email": "pam@example.com"}).status_code == 303
    db.session.add(Subscriber(email="una@example.com", name="Una", status=S.UNSUBSCRIBED))
    db.session.commit()
    run_jobs()
    inbox.clear()
    db.session.query(ConfirmLimit).delete()
    db.session.commit()
    for email in ("pam@example.com", "una@example.com"):
        answer = blog.post("/embed/subscribe", data={"email": email, **fields})
        assert answer.status_code == 303 and answer.headers["Location"].endswith("/check-inbox")
        sub = subscriber(email)
        assert sub is not None and sub.status is not S.CONFIRMED
        assert tag_names(db.session(), [sub.id])[sub.id] == ["Group 8"]
    # The tag alone sends them nothing: the group's confirmed readers are still only First.
    confirmed = editor.get("/editor/subscribers?tag=Group+8&status=confirmed").text
    assert emails_on(confirmed) == ["first@example.com"]

    run_jobs()
    mail = inbox.to("pam@example.com")
    assert len(mail) == 1 and mail[0]["Subject"].startswith("Please confirm")
    reader = app.test_client()
    assert reader.post(link_to(mail[0], "/confirm/")).status_code in (200, 303)
    confirmed = editor.get("/editor/subscribers?tag=Group+8&status=confirmed").text
    assert sorted(emails_on(confirmed)) == ["first@example.com", "pam@example.com"]


def test_a_group_sign_up_by_someone_at_the_most_tags_still_goes_through_untagged(app, caplog):
    _tag_someone("Group 8")
    editor = editor_client(app)
    fields = _snippet_fields(editor.get("/editor/embed?tag=Group+8").text)
    full = Subscriber(email="full@example.com", status=S.PENDING)
    db.session.add(full)
    db.session.flush()
    add_tags(db.session(), full.id, [f"t{i}" for i in range(100)], by="test")
    db.session.commit()
    blog = app.test_client(use_cookies=False)
    with caplog.at_level(logging.WARNING):
        answer = blog.post("/embed/subscribe", data={"email": "full@example.com", **fields})
    assert answer.status_code == 303 and answer.headers["Location"].endswith("/check-inbox")
    sub = subscriber("full@example.com")
    assert sub is not None and "Group 8" not in tag_names(db.session(), [sub.id])[sub.id]
    assert any("one too many" in r.getMessage() for r in caplog.records)
