"""The reader's own page and the unsubscribe page over HTTP, reading the mail a real server got."""

from __future__ import annotations

import json
import logging
import re
from typing import Any

import pytest
import sqlalchemy as sa

from newsletter.extensions import db
from newsletter.issues.actions import create_issue
from newsletter.logsafe import redact
from newsletter.models import (
    DailyStat,
    Delivery,
    Subscriber,
    SubscriberEvent,
    SubscriberStatus,
    utcnow,
)
from newsletter.services import tokens
from newsletter.subscribers.links import Tokens
from newsletter.subscribers.state import erase
from newsletter.tasks.dispatch import send_issue
from newsletter.tasks.mail import queue_welcome
from tests.helpers import text_part
from tests.helpers.editors import editor_client, page_token
from tests.helpers.readers import link_to, subscriber
from tests.helpers.sending import send_and_wait

S = SubscriberStatus


def _state() -> tuple[Any, ...]:
    """Everything a reader's action could change, to compare before and after."""
    db.session.expire_all()
    people = db.session.execute(
        sa.select(
            Subscriber.email,
            Subscriber.name,
            Subscriber.status,
            Subscriber.version,
            Subscriber.paused_until,
            Subscriber.new_email,
            Subscriber.new_email_due_at,
            Subscriber.old_email,
        ).order_by(Subscriber.id)
    ).all()
    events = db.session.scalar(sa.select(sa.func.count()).select_from(SubscriberEvent))
    stats = db.session.execute(sa.select(DailyStat.kind, DailyStat.count)).all()
    db.session.commit()
    return tuple(people), events, sorted(stats)


def _manage_path(sub: Subscriber) -> str:
    """The link in every mail: the page with its harmless actions."""
    return f"/manage/{tokens().manage_token(sub.id, sub.created_at, sub.email)}"


def _fresh_path(sub: Subscriber) -> str:
    """The link mailed on request: the page with data, address change and erasing too."""
    return f"/manage/{tokens().access_token(sub.id, sub.created_at, sub.email)}"


def _post(client: Any, page: str, action: str, **data: str) -> Any:
    """Post a form of ``page`` as its browser would, CSRF token included."""
    return client.post(action, data={"csrf_token": page_token(client, page), **data})


def _events(sub_id: int) -> list[str]:
    return [
        k.value
        for k in db.session.scalars(
            sa.select(SubscriberEvent.kind).where(SubscriberEvent.subscriber_id == sub_id)
        )
    ]


# --- the page ------------------------------------------------------------------------------------


def test_the_page_shows_the_reader_and_a_get_changes_nothing(app, client, make_subscriber):
    sub = make_subscriber("ann@example.com", name="Ann")
    before = _state()
    answer = client.get(_manage_path(sub))
    assert answer.status_code == 200
    assert answer.headers["Cache-Control"] == "no-store"
    body = answer.get_data(as_text=True)
    assert "ann@example.com" in body and 'value="Ann"' in body
    # The link in every mail: name and pause here; data, address and erasing by a mailed link.
    for action in ("name", "pause", "link"):
        assert f'action="{_manage_path(sub)}/{action}"' in body
    for action in ("address", "data", "erase"):
        assert f'action="{_manage_path(sub)}/{action}"' not in body
    assert body.count(f'action="{_manage_path(sub)}/link"') == 3
    assert f'href="/unsubscribe/{tokens().unsubscribe_token(sub.id)}"' in body
    fresh = client.get(_fresh_path(sub)).get_data(as_text=True)
    for action in ("name", "address", "pause", "data", "erase"):
        assert f'action="{_fresh_path(sub)}/{action}"' in fresh
    assert "/link" not in fresh
    assert _state() == before


def test_the_links_in_an_issue_and_the_welcome_mail_open_the_page(
    app, client, make_subscriber, run_jobs, inbox
):
    sub = make_subscriber("ann@example.com", name="Ann")
    sub.welcome_due_at = utcnow()
    db.session.commit()
    issue = create_issue("Tip one", "Body")
    send_issue(issue.id)
    queue_welcome(sub.id, sub.welcome_due_at)
    run_jobs()
    mails = inbox.wait_for(2)
    for mail in mails:
        path = link_to(mail, "/manage/")
        assert path == _manage_path(sub), mail["Subject"]
        page = client.get(path)
        assert page.status_code == 200 and "ann@example.com" in page.get_data(as_text=True)


def _bad_manage_tokens(sub: Subscriber) -> dict[str, str]:
    sub_id = sub.id
    good = tokens().manage_token(sub_id, sub.created_at, sub.email)
    i = len(good) - 5
    return {
        "tampered": good[:i] + ("A" if good[i] != "A" else "B") + good[i + 1 :],
        "truncated": good[:-6],
        "cross-purpose": tokens().unsubscribe_token(sub_id),
        "address link": tokens().address_token(sub_id, 1, "x@example.com"),
        "another key": Tokens("another-secret-key-that-is-long-enough-0123456789").manage_token(
            sub_id, sub.created_at, sub.email
        ),
        "garbage": "not-a-token",
        "huge": "A" * 10_000,
    }


ACTIONS = {
    "name": {"name": "Mallory"},
    "address": {"email": "mallory@example.com"},
    "pause": {"weeks": "4"},
    "resume": {},
    "data": {},
    "erase": {"email": "ann@example.com"},
}


SIGNED_WRONG = ("tampered", "truncated", "another key")


def test_forged_or_stale_manage_tokens_get_a_clear_page_and_change_nothing(
    app, client, make_subscriber, run_jobs, inbox
):
    sub = make_subscriber("ann@example.com", name="Ann")
    gone = make_subscriber("gone@example.com")
    stale = tokens().manage_token(gone.id, gone.created_at, gone.email)
    db.session.delete(gone)
    db.session.commit()
    token = page_token(client, _manage_path(sub))
    before = _state()
    # A signature that does not fit the reader is told apart from no link at all, never from
    # a link to an address since changed: both "no longer work".
    for kind, bad in _bad_manage_tokens(sub).items():
        status, words = (404, "no longer works") if kind in SIGNED_WRONG else (400, "not valid")
        answer = client.get(f"/manage/{bad}")
        assert answer.status_code == status, kind
        assert words in answer.get_data(as_text=True) and "ann@" not in answer.get_data(
            as_text=True
        )
        for action, data in {**ACTIONS, "link": {}}.items():
            answer = client.post(f"/manage/{bad}/{action}", data={"csrf_token": token, **data})
            assert answer.status_code == status, (kind, action)
    # A reader who erased themselves: their old links know nobody.
    assert client.get(f"/manage/{stale}").status_code == 404
    for action, data in ACTIONS.items():
        answer = client.post(f"/manage/{stale}/{action}", data={"csrf_token": token, **data})
        assert answer.status_code == 404, action
        assert "We don't know this link" in answer.get_data(as_text=True)
    assert _state() == before
    assert run_jobs() == 0 and inbox.messages == []


def test_an_erased_readers_old_link_never_opens_the_page_of_whoever_gets_their_id(
    app, client, make_subscriber
):
    make_subscriber("older@example.com")
    newest = make_subscriber("erased@example.com", name="Erased")
    old_id, old_link = newest.id, _manage_path(newest)
    erase(db.session, "erased@example.com")
    db.session.commit()
    # Plain SQLite would give the next row the erased newest id; migration 0007 stops that.
    heir = make_subscriber("heir@example.com", name="Heir")
    assert heir.id > old_id
    assert old_link != _manage_path(heir)
    page = client.get(old_link)
    assert page.status_code == 404 and "heir@" not in page.get_data(as_text=True)
    assert client.get(_manage_path(heir)).status_code == 200


def test_every_change_needs_the_pages_csrf_token(app, make_subscriber, run_jobs, inbox):
    sub = make_subscriber("ann@example.com", name="Ann")
    before = _state()
    forger = app.test_client()
    for action, data in ACTIONS.items():
        answer = forger.post(f"{_manage_path(sub)}/{action}", data=data)
        assert answer.status_code == 400, action
        assert "The form has expired" in answer.get_data(as_text=True)
    assert _state() == before
    assert run_jobs() == 0 and inbox.messages == []


# --- the name ------------------------------------------------------------------------------------


def test_a_reader_renames_themselves(app, client, make_subscriber):
    sub = make_subscriber("ann@example.com", name="Ann")
    path = _manage_path(sub)
    answer = _post(client, path, f"{path}/name", name="  Ann Lee ")
    assert answer.status_code == 303 and answer.headers["Location"].endswith(path)
    page = client.get(path).get_data(as_text=True)
    assert "Your name is saved." in page and 'value="Ann Lee"' in page
    assert subscriber("ann@example.com").name == "Ann Lee"
    assert _events(sub.id) == ["renamed"]


@pytest.mark.parametrize(
    ("name", "words"),
    [
        ("x" * 10_240, "under 100 characters"),
        ("Ann\r\nBcc: all@example.com", "line breaks"),
        ("Ann\nLee", "line breaks"),
        ("Ann\x00", ""),
    ],
)
def test_bad_names_are_refused_and_change_nothing(app, client, make_subscriber, name, words):
    sub = make_subscriber("ann@example.com", name="Ann")
    path = _manage_path(sub)
    before = _state()
    answer = _post(client, path, f"{path}/name", name=name)
    assert answer.status_code == 400 and answer.mimetype == "text/html"
    assert words in answer.get_data(as_text=True)
    assert "Traceback" not in answer.get_data(as_text=True)
    assert _state() == before


# --- pausing -------------------------------------------------------------------------------------


@pytest.mark.parametrize("weeks", ["0", "99", "13", "-1", "", "four", "2.5", "1e1"])
def test_a_pause_outside_one_to_twelve_weeks_is_refused(app, client, make_subscriber, weeks):
    sub = make_subscriber("ann@example.com")
    path = _manage_path(sub)
    before = _state()
    answer = _post(client, path, f"{path}/pause", weeks=weeks)
    assert answer.status_code == 400
    assert "Choose a break of 1 to 12 weeks." in answer.get_data(as_text=True)
    assert _state() == before


def test_a_reader_pauses_and_resumes(app, client, make_subscriber):
    sub = make_subscriber("ann@example.com")
    path = _manage_path(sub)
    answer = _post(client, path, f"{path}/pause", weeks="12")
    assert answer.status_code == 303
    page = client.get(path).get_data(as_text=True)
    until = subscriber("ann@example.com").paused_until
    assert until is not None and 83 <= (until - utcnow()).days <= 84
    assert "Paused. The tips start again on" in page and "Resume now" in page
    assert _post(client, path, f"{path}/resume").status_code == 303
    assert "Welcome back" in client.get(path).get_data(as_text=True)
    assert subscriber("ann@example.com").paused_until is None
    assert sorted(_events(sub.id)) == ["paused", "resumed"]


def test_someone_unsubscribed_cannot_pause(app, client, make_subscriber):
    sub = make_subscriber("ann@example.com", status="unsubscribed")
    path = _manage_path(sub)
    page = client.get(path).get_data(as_text=True)
    assert "Pausing is for readers who are subscribed." in page
    assert f'action="/resubscribe/{tokens().unsubscribe_token(sub.id)}"' in page
    before = _state()
    answer = _post(client, path, f"{path}/pause", weeks="2")
    assert answer.status_code == 409 and "Only a subscribed reader" in answer.get_data(as_text=True)
    assert _state() == before


# --- changing the address ------------------------------------------------------------------------


def test_an_address_change_takes_effect_when_the_new_inbox_confirms(
    app, client, make_subscriber, run_jobs, inbox
):
    sub = make_subscriber("ann@example.com", name="Ann")
    path = _fresh_path(sub)
    answer = _post(client, path, f"{path}/address", email="Ann.New@Example.org")
    assert answer.status_code == 200 and "Check the new inbox" in answer.get_data(as_text=True)
    assert subscriber("ann@example.com") is not None  # nothing changed yet
    assert run_jobs() == 1
    (mail,) = inbox.wait_for(1)
    assert inbox.envelopes[0][1] == ["ann.new@example.org"]
    assert "ann@example.com" not in mail.as_string()  # the new inbox learns nothing else
    assert "add tips@example.org to your contacts" in text_part(mail)
    link = link_to(mail, "/manage/address/")
    # A mail scanner fetching the link changes nothing.
    scanner = app.test_client(use_cookies=False)
    shown = scanner.get(link)
    assert shown.status_code == 200 and "Use this address?" in shown.get_data(as_text=True)
    assert subscriber("ann@example.com") is not None
    done = _post(client, link, link)
    assert done.status_code == 200 and "Your address is changed" in done.get_data(as_text=True)
    assert subscriber("ann@example.com") is None
    moved = subscriber("ann.new@example.org")
    assert (moved.id, moved.name, moved.status) == (sub.id, "Ann", S.CONFIRMED)
    # The old address is told, and only then forgotten.
    assert run_jobs() == 1
    notice = inbox.wait_for(2)[1]
    assert inbox.envelopes[1][1] == ["ann@example.com"]
    assert "ann.new@example.org" in text_part(notice)
    assert "add tips@example.org to your contacts" in text_part(notice)
    assert subscriber("ann.new@example.org").old_email is None
    # The link did its work; pressing it again is harmless. The links to the page that named
    # the old address show nothing now; links made for the new one work.
    again = _post(client, _manage_path(moved), link)
    assert again.status_code == 200 and "Your address is changed" in again.get_data(as_text=True)
    old = client.get(path)
    assert old.status_code == 404 and "ann.new@" not in old.get_data(as_text=True)
    assert "ann.new@example.org" in client.get(_manage_path(moved)).get_data(as_text=True)
    assert run_jobs() == 0


def test_an_address_already_on_the_list_gets_the_same_answer_and_nothing_else(
    app, client, make_subscriber, run_jobs, inbox
):
    sub = make_subscriber("ann@example.com")
    make_subscriber("bob@example.com", name="Bob")
    make_subscriber("cat@example.com", status="unsubscribed")
    path = _fresh_path(sub)
    answers = {}
    for email in ("bob@example.com", "CAT@example.com"):
        before = _state()
        answers[email] = _post(client, path, f"{path}/address", email=email)
        assert _state() == before  # nothing stored for the reader, nothing for the other
    assert run_jobs() == 0 and inbox.messages == []
    answers["free"] = _post(client, path, f"{path}/address", email="dan@example.com")
    assert run_jobs() == 1 and len(inbox.wait_for(1)) == 1
    bodies = {k: (a.status_code, a.get_data(as_text=True)) for k, a in answers.items()}
    assert len(set(bodies.values())) == 1, "the answer tells a taken address from a free one"
    # And the page after it shows nothing either.
    assert "dan@example.com" not in client.get(path).get_data(as_text=True)


@pytest.mark.parametrize(
    ("email", "words"),
    [
        ("not-an-address", "needs an @"),
        ("x" * 10_240 + "@example.com", "too long"),
        ("ann2@example.com\r\nBcc: all@example.com", "just the address"),
        ("ANN@example.com", "already the address"),
        ("", "enter your email address"),
    ],
)
def test_bad_new_addresses_are_refused_and_change_nothing(
    app, client, make_subscriber, run_jobs, inbox, email, words
):
    sub = make_subscriber("ann@example.com")
    path = _fresh_path(sub)
    before = _state()
    answer = _post(client, path, f"{path}/address", email=email)
    assert answer.status_code == 400 and words in answer.get_data(as_text=True)
    assert _state() == before
    assert run_jobs() == 0 and inbox.messages == []


def test_an_address_taken_before_the_link_is_pressed_is_not_taken_over(
    app, client, make_subscriber, run_jobs, inbox
):
    sub = make_subscriber("ann@example.com")
    path = _fresh_path(sub)
    _post(client, path, f"{path}/address", email="new@example.com")
    run_jobs()
    link = link_to(inbox.wait_for(1)[0], "/manage/address/")
    make_subscriber("new@example.com", status="pending", name="Someone")
    before = _state()
    answer = _post(client, link, link)
    assert answer.status_code == 409
    assert "That could not be done" in answer.get_data(as_text=True)
    after = _state()
    assert after[0][1] == before[0][1]  # the other person: untouched
    assert subscriber("ann@example.com").email == "ann@example.com"
    assert run_jobs() == 0 and len(inbox.messages) == 1


def test_stale_expired_and_forged_address_links_change_nothing(
    app, client, make_subscriber, run_jobs, inbox, monkeypatch
):
    sub = make_subscriber("ann@example.com")
    path = _fresh_path(sub)
    _post(client, path, f"{path}/address", email="one@example.com")
    run_jobs()
    _post(client, path, f"{path}/address", email="two@example.net")
    run_jobs()
    first, second = (link_to(m, "/manage/address/") for m in inbox.wait_for(2))
    real = __import__("time").time
    monkeypatch.setattr("time.time", lambda: real() - 8 * 86400)
    expired = "/manage/address/" + tokens().address_token(sub.id, sub.version, "two@example.net")
    monkeypatch.undo()
    before = _state()
    for link, status, words in (
        (first, 400, "This link is out of date"),  # a later request replaced it
        (expired, 410, "This link has expired"),
        (second[:-4] + "AAAA", 400, "not valid"),
        ("/manage/address/" + "A" * 5000, 400, "not valid"),
        (
            "/manage/address/" + tokens().manage_token(sub.id, sub.created_at, sub.email),
            400,
            "not valid",
        ),
    ):
        assert client.get(link).status_code == status, link
        answer = _post(client, second, link)
        assert answer.status_code == status and words in answer.get_data(as_text=True), link
    assert _state() == before
    assert _post(client, second, second).status_code == 200
    assert subscriber("two@example.net") is not None


# --- their data and erasing ----------------------------------------------------------------------


def test_the_download_holds_profile_history_and_deliveries(
    app, client, make_subscriber, run_jobs, inbox
):
    sub = make_subscriber("ann@example.com", name="Ann")
    send_and_wait("Tip one: bisect", "Use **git bisect**.", run_jobs, inbox)
    path = _fresh_path(sub)
    _post(client, path, f"{path}/pause", weeks="1")
    answer = _post(client, path, f"{path}/data")
    assert answer.status_code == 200 and answer.mimetype == "application/json"
    assert answer.headers["Content-Disposition"].startswith("attachment;")
    assert answer.headers["Cache-Control"] == "no-store"
    data = json.loads(answer.get_data(as_text=True))
    assert data["profile"]["email"] == "ann@example.com" and data["profile"]["name"] == "Ann"
    assert [h["kind"] for h in data["history"]] == ["paused"]
    (copy,) = data["deliveries"]
    assert (copy["subject"], copy["status"]) == ("Tip one: bisect", "sent") and copy["sent_at"]
    assert data["bounces"] == []


def test_erasing_needs_the_address_typed_and_then_leaves_nothing(
    app, client, make_subscriber, run_jobs, inbox
):
    sub = make_subscriber("ann@example.com", name="Ann")
    send_and_wait("Tip", "Body", run_jobs, inbox)
    path = _fresh_path(sub)
    before = _state()
    for typed in ("", "bob@example.com", "ann@example", "x" * 10_000):
        answer = _post(client, path, f"{path}/erase", email=typed)
        assert answer.status_code == 400, typed
        assert "That is not the address of this subscription." in answer.get_data(as_text=True)
    assert _state() == before
    answer = _post(client, path, f"{path}/erase", email=" Ann@Example.com ")
    assert answer.status_code == 200 and "You're erased" in answer.get_data(as_text=True)
    assert subscriber("ann@example.com") is None
    assert db.session.scalar(sa.select(sa.func.count()).select_from(SubscriberEvent)) == 0
    # The send's count survives; the person does not.
    assert db.session.scalar(sa.select(Delivery.subscriber_id)) is None
    assert client.get(path).status_code == 404
    assert client.get(f"/unsubscribe/{tokens().unsubscribe_token(sub.id)}").status_code == 404


# --- leaving -------------------------------------------------------------------------------------


def test_the_unsubscribe_page_offers_a_reason_and_one_button_and_no_way_to_the_page(
    app, client, make_subscriber
):
    sub = make_subscriber("ann@example.com")
    body = client.get(f"/unsubscribe/{tokens().unsubscribe_token(sub.id)}").get_data(as_text=True)
    assert body.count("<button") == 1
    for value in ("too_many", "not_relevant", "never_signed_up", "other"):
        assert f'name="reason" value="{value}"' in body
    # The unsubscribe link is in years of mail and in headers anyone sees: it opens no page.
    assert "/manage/" not in body
    assert "ann@" not in body


@pytest.mark.parametrize(
    ("form", "counted"),
    [
        ({"reason": "too_many"}, {"why:too_many": 1}),
        ({"reason": "never_signed_up"}, {"why:never_signed_up": 1}),
        ({}, {}),
        ({"List-Unsubscribe": "One-Click"}, {}),
        ({"reason": "x" * 10_000}, {}),
        ({"reason": "too_many\r\n"}, {}),
    ],
)
def test_unsubscribing_with_or_without_a_reason(app, make_subscriber, form, counted):
    sub = make_subscriber("ann@example.com")
    provider = app.test_client(use_cookies=False)  # no CSRF token, no cookie: RFC 8058
    path = f"/unsubscribe/{tokens().unsubscribe_token(sub.id)}"
    for _twice in range(2):
        answer = provider.post(path, data=form)
        assert answer.status_code == 200 and "You're unsubscribed" in answer.get_data(as_text=True)
    assert subscriber("ann@example.com").status is S.UNSUBSCRIBED
    stats = dict(
        db.session.execute(
            sa.select(DailyStat.kind, DailyStat.count).where(DailyStat.kind.startswith("why:"))
        ).all()
    )
    assert stats == counted


def test_editors_see_why_readers_left_and_who_was_skipped_for_a_pause(
    app, make_subscriber, run_jobs, inbox
):
    readers = [make_subscriber(f"r{i}@example.com") for i in range(5)]
    provider = app.test_client(use_cookies=False)
    for sub, reason in zip(readers[:3], ("too_many", "too_many", "other"), strict=True):
        provider.post(f"/unsubscribe/{tokens().unsubscribe_token(sub.id)}", data={"reason": reason})
    reader = app.test_client()
    path = _manage_path(readers[3])
    _post(reader, path, f"{path}/pause", weeks="2")
    send_and_wait("Paused send", "Body", run_jobs, inbox)
    # The reasons outlive the readers who gave them.
    gone = readers[0]
    db.session.delete(db.session.get(Subscriber, gone.id))
    db.session.commit()
    page = editor_client(app).get("/editor/stats")
    assert page.status_code == 200
    body = page.get_data(as_text=True)
    reasons = re.search(r'<table id="reasons">(.*?)</table>', body, re.S).group(1)
    assert re.search(r"<td>Too many emails</td><td>2</td><td>2</td>", reasons)
    assert re.search(r"<td>Another reason</td><td>1</td><td>1</td>", reasons)
    assert re.search(r"<td>I never signed up</td><td>0</td><td>0</td>", reasons)
    assert "<strong>1</strong>pauses taken" in body
    assert re.search(r'<td class="skipped">1<br><small class="muted">1 paused</small>', body)


def test_the_manage_token_stays_out_of_the_logs(app, client, make_subscriber, caplog):
    sub = make_subscriber("ann@example.com")
    token = tokens().manage_token(sub.id, sub.created_at, sub.email)
    address = tokens().address_token(sub.id, 1, "new@example.com")
    for line in (f"GET /manage/{token} HTTP/1.1", f"GET /manage/address/{address} HTTP/1.1"):
        assert token not in redact(line) and address not in redact(line)
    with caplog.at_level(logging.INFO):
        logging.getLogger("werkzeug").info('127.0.0.1 - - "GET /manage/%s HTTP/1.1" 200', token)
    assert token not in caplog.text
