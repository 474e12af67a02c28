"""A sign-up for an address already on the list changes nothing stored about the person until
the link it mails is confirmed; the name typed rides in that link."""

from __future__ import annotations

import re
import time
from datetime import timedelta
from typing import Any

import pytest
import sqlalchemy as sa

from newsletter.extensions import db
from newsletter.models import ConfirmLimit, SubscriberEvent, SubscriberStatus
from newsletter.subscribers.state import bounce, unsubscribe
from tests.helpers import override_settings
from tests.helpers.readers import link_to, subscribe, subscriber, without_address

S = SubscriberStatus


def stored(email: str) -> tuple[Any, ...]:
    """Everything about a person a stranger's sign-up must leave alone."""
    sub = subscriber(email)
    assert sub is not None
    history = db.session.scalar(
        sa.select(sa.func.count()).where(SubscriberEvent.subscriber_id == sub.id)
    )
    db.session.commit()
    return (
        sub.status,
        sub.name,
        sub.version,
        sub.updated_at,
        sub.confirmed_at,
        sub.unsubscribed_at,
        sub.bounced_at,
        history,
    )


def left(make_subscriber: Any, email: str, how: str) -> int:
    """A reader who was on the list and left it (unsubscribed or bounced)."""
    sub = make_subscriber(email, status="confirmed", name="Old Name")
    (unsubscribe if how == "unsubscribed" else bounce)(db.session, sub.id)
    db.session.commit()
    return sub.id


def cooldown_passes() -> None:
    """Let the confirmation cooldown pass: every counted mail went 11 minutes earlier."""
    for row in db.session.scalars(sa.select(ConfirmLimit)):
        row.last_at -= timedelta(minutes=11)
    db.session.commit()


@pytest.mark.parametrize("how", ["unsubscribed", "bounced"])
def test_a_sign_up_for_someone_who_left_changes_nothing_until_they_confirm(
    app, client, make_subscriber, run_jobs, inbox, how
):
    left(make_subscriber, "gone@example.com", how)
    before = stored("gone@example.com")
    new_page = without_address(subscribe(client, "fresh@example.com").text, "fresh@example.com")
    answer = subscribe(client, "gone@example.com", "Typed By Anyone")
    assert answer.status_code == 200
    assert without_address(answer.text, "gone@example.com") == new_page  # nobody learns who reads
    assert stored("gone@example.com") == before

    assert run_jobs() == 2
    (mail,) = inbox.to("gone@example.com")
    link = link_to(mail, "/confirm/")
    assert "Typed" not in mail.as_string()
    scanner = app.test_client()  # a mail scanner, or another browser: still nothing changes
    page = scanner.get(link)
    assert page.status_code == 200 and "<form" in page.text
    assert stored("gone@example.com") == before

    assert client.post(link).status_code == 200
    back = subscriber("gone@example.com")
    assert (back.status, back.name) == (S.CONFIRMED, "Typed By Anyone")
    assert back.confirm_due_at is None and back.confirm_name is None
    assert run_jobs() == 1
    assert [m["Subject"] for m in inbox.to("gone@example.com")][-1].startswith("Welcome")


def test_the_api_sign_up_changes_nothing_either(app, client, make_subscriber, run_jobs, inbox):
    left(make_subscriber, "api@example.com", "unsubscribed")
    before = stored("api@example.com")
    answer = client.post("/api/v1/subscribe", json={"email": "API@example.com", "name": "New"})
    fresh = client.post("/api/v1/subscribe", json={"email": "fresh@example.com"})
    assert answer.status_code == fresh.status_code == 202 and answer.json == fresh.json
    assert stored("api@example.com") == before
    assert run_jobs() == 2
    (mail,) = inbox.to("api@example.com")
    assert client.post(link_to(mail, "/confirm/")).status_code == 200
    assert (subscriber("api@example.com").status, subscriber("api@example.com").name) == (
        S.CONFIRMED,
        "New",
    )


def test_a_confirmed_reader_signing_up_again_changes_nothing_and_gets_no_mail(
    app, client, make_subscriber, run_jobs, inbox
):
    make_subscriber("here@example.com", status="confirmed", name="Here")
    before = stored("here@example.com")
    assert subscribe(client, "here@example.com", "Someone Else").status_code == 200
    assert stored("here@example.com") == before
    assert run_jobs() == 0 and inbox.messages == []


def test_a_link_from_before_the_reader_changed_is_refused(
    app, client, make_subscriber, run_jobs, inbox
):
    sid = left(make_subscriber, "gone@example.com", "unsubscribed")
    subscribe(client, "gone@example.com", "Back Again")
    assert run_jobs() == 1
    link = link_to(inbox.to("gone@example.com")[0], "/confirm/")
    assert client.post(link).status_code == 200  # back on the list...
    unsubscribe(db.session, sid)  # ...and gone again: the link must not bring them back
    db.session.commit()
    before = stored("gone@example.com")
    for answer in (client.get(link), client.post(link)):
        assert answer.status_code == 400
    assert stored("gone@example.com") == before
    assert before[0] is S.UNSUBSCRIBED

    # And a first sign-up's link, once its reader confirmed and left, stays dead too.
    subscribe(client, "first@example.com", "First")
    assert run_jobs() == 2  # the welcome above, and this confirmation
    first_link = link_to(inbox.to("first@example.com")[0], "/confirm/")
    assert client.post(first_link).status_code == 200
    unsubscribe(db.session, subscriber("first@example.com").id)
    db.session.commit()
    assert client.post(first_link).status_code == 400
    assert subscriber("first@example.com").status is S.UNSUBSCRIBED


def test_a_pending_reader_keeps_their_name_until_the_newest_link_is_confirmed(
    app, client, run_jobs, inbox
):
    subscribe(client, "ann@example.com", "Ann")
    assert run_jobs() == 1
    before = stored("ann@example.com")
    subscribe(client, "ann@example.com", "Spam Name")  # within the cooldown: no mail at all
    assert stored("ann@example.com") == before
    assert run_jobs() == 0
    cooldown_passes()
    subscribe(client, "ann@example.com", "Annie")
    assert stored("ann@example.com") == before
    assert run_jobs() == 1
    first, newest = inbox.to("ann@example.com")
    assert link_to(first, "/confirm/") != link_to(newest, "/confirm/")
    assert client.post(link_to(newest, "/confirm/")).status_code == 200
    ann = subscriber("ann@example.com")
    assert (ann.status, ann.name, ann.version) == (S.CONFIRMED, "Annie", 2)


def test_an_expired_link_of_someone_asked_back_sends_a_fresh_one_with_the_same_name(
    app, client, make_subscriber, run_jobs, inbox
):
    left(make_subscriber, "gone@example.com", "unsubscribed")
    before = stored("gone@example.com")
    subscribe(client, "gone@example.com", "Back Name")
    assert run_jobs() == 1
    old = link_to(inbox.to("gone@example.com")[0], "/confirm/")
    override_settings(app, confirm_max_age=1)
    time.sleep(2.1)
    expired = client.get(old)
    assert expired.status_code == 410
    token = re.search(r'name="token" value="([^"]+)"', expired.text)
    assert token
    cooldown_passes()
    assert client.post("/confirm/resend", data={"token": token.group(1)}).status_code == 200
    assert stored("gone@example.com") == before
    override_settings(app, confirm_max_age=7 * 24 * 3600)
    assert run_jobs() == 1
    fresh = link_to(inbox.to("gone@example.com")[1], "/confirm/")
    assert client.post(fresh).status_code == 200
    back = subscriber("gone@example.com")
    assert (back.status, back.name) == (S.CONFIRMED, "Back Name")


def test_two_asks_before_any_worker_runs_send_one_mail_with_the_newest_name(
    app, client, make_subscriber, run_jobs, inbox
):
    left(make_subscriber, "gone@example.com", "bounced")
    subscribe(client, "gone@example.com", "First Try")
    cooldown_passes()
    subscribe(client, "gone@example.com", "Second Try")
    assert run_jobs() == 2  # both jobs run; the second finds its mail already sent
    (mail,) = inbox.to("gone@example.com")
    assert client.post(link_to(mail, "/confirm/")).status_code == 200
    assert subscriber("gone@example.com").name == "Second Try"
