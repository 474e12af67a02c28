"""The subscription state machine: one table of transitions, limits against list-bombing."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa

from newsletter.errors import Invalid
from newsletter.extensions import db
from newsletter.models import EventKind, Subscriber, SubscriberEvent, SubscriberStatus
from newsletter.subscribers.imports import import_csv
from newsletter.subscribers.signup import subscribe as subscribe_domain
from newsletter.subscribers.state import (
    TRANSITIONS,
    Action,
    ConfirmOutcome,
    bounce,
    confirm,
    erase,
    unsubscribe,
)
from newsletter.subscribers.validate import clean_name, normalize_email
from newsletter.tasks.worker import build_worker
from tests.helpers import html_part, text_part
from tests.helpers.readers import subscribe, subscriber

S = SubscriberStatus
T0 = datetime(2030, 1, 7, 8, 0, tzinfo=UTC)


def test_case_variants_of_an_address_are_one_subscriber(app, client):
    for variant in ("Ann@Example.COM", "ann@example.com", " ANN@EXAMPLE.com "):
        assert subscribe(client, variant).status_code == 200
    rows = db.session.scalars(sa.select(Subscriber.email)).all()
    assert rows == ["ann@example.com"]


def test_normalising_keeps_idn_domains_and_is_stable():
    once = normalize_email("Jörg@Bücher.Example")
    assert once == normalize_email(once) == "jörg@bücher.example"
    with pytest.raises(Invalid):
        normalize_email("x@" + "a" * 250 + ".example")
    assert clean_name("  Ann  Lee ") == "Ann  Lee"
    with pytest.raises(Invalid):
        clean_name("Ann\tLee")


def test_fifty_concurrent_subscribes_of_one_address_make_one_row_and_one_mail(make_app, inbox):
    app = make_app(WTF_CSRF_ENABLED=False, SUBSCRIBE_RATE_LIMIT="1000/600")
    with app.app_context():
        db.session.execute(sa.delete(Subscriber))
        db.session.commit()
    start = threading.Barrier(50)
    answers: list[int] = []

    def sign_up(n: int) -> None:
        client = app.test_client()
        start.wait()
        email = "Crowd@Example.com" if n % 2 else "crowd@example.com"
        answers.append(client.post("/subscribe", data={"email": email}).status_code)

    threads = [threading.Thread(target=sign_up, args=(n,)) for n in range(50)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert answers == [303] * 50  # each sent on to the check-inbox page
    with app.app_context():
        count = db.session.scalar(sa.select(sa.func.count()).select_from(Subscriber))
        assert count == 1
        db.session.commit()
        worker = build_worker(app)
        worker.work(burst=True, with_scheduler=False)
        assert worker.jobs_done == 1
    assert len(inbox.wait_for(1)) == 1
    assert len(inbox.to("crowd@example.com")) == 1


def test_confirmation_mail_at_most_once_per_ten_minutes_and_three_a_day(app):
    def again(at: datetime) -> bool:
        result = subscribe_domain(db.session, "bomb@example.com", now=at)
        db.session.commit()
        return result.send_confirmation

    assert again(T0) is True
    assert again(T0 + timedelta(minutes=1)) is False
    assert again(T0 + timedelta(minutes=9, seconds=59)) is False
    assert again(T0 + timedelta(minutes=10)) is True
    assert again(T0 + timedelta(minutes=25)) is True
    assert again(T0 + timedelta(hours=3)) is False  # the fourth of the day
    assert again(T0 + timedelta(hours=15)) is False
    assert again(T0 + timedelta(days=1)) is True  # a new day
    assert subscriber("bomb@example.com").confirm_sent_count == 1  # the new day's first
    # Only the first went into the history: a repeat sign-up writes nothing about the person.
    sent = db.session.scalar(
        sa.select(sa.func.count()).where(SubscriberEvent.kind == EventKind.CONFIRMATION_SENT)
    )
    assert sent == 1


def test_the_typed_name_never_appears_in_the_confirmation_mail(app, client, run_jobs, inbox):
    spam = "Cheap pills at spam.example CLICK"
    subscribe(client, "named@example.com", spam)
    assert subscriber("named@example.com").name == spam
    assert run_jobs() == 1
    (msg,) = inbox.wait_for(1)
    whole = msg.as_string() + text_part(msg) + html_part(msg)
    for piece in ("Cheap", "pills", "spam.example", "CLICK"):
        assert piece not in whole


def test_every_transition_in_the_table_and_nothing_else(app, make_subscriber):
    changes = {
        Action.CONFIRM: lambda s: confirm(db.session, s.id, s.version),
        Action.UNSUBSCRIBE: lambda s: unsubscribe(db.session, s.id),
        Action.BOUNCE: lambda s: bounce(db.session, s.id),
        "sign-up": lambda s: subscribe_domain(db.session, s.email),  # never a change
    }
    for status in S:
        for action, do in changes.items():
            sub = make_subscriber(status=status.value)
            version = sub.version
            do(sub)
            db.session.commit()
            db.session.refresh(sub)
            expected = TRANSITIONS.get((status, action), status)
            assert sub.status is expected, (status, action)
            assert (sub.version > version) == (expected is not status), (status, action)


def test_a_stale_or_unknown_confirm_changes_nothing(app, make_subscriber):
    sub = make_subscriber(status="pending")
    assert confirm(db.session, sub.id, sub.version + 1) is ConfirmOutcome.STALE
    assert confirm(db.session, 10_000, 1) is ConfirmOutcome.UNKNOWN
    db.session.commit()
    assert subscriber(sub.email).status is S.PENDING
    assert confirm(db.session, sub.id, sub.version) is ConfirmOutcome.CONFIRMED
    assert confirm(db.session, sub.id, sub.version) is ConfirmOutcome.ALREADY


def test_coming_back_after_unsubscribing_only_mails_a_link(app, make_subscriber):
    sub = make_subscriber("back@example.com", status="confirmed", name="Old")
    unsubscribe(db.session, sub.id)
    db.session.commit()
    version = subscriber("back@example.com").version
    result = subscribe_domain(db.session, "back@example.com", "New")
    db.session.commit()
    assert result.send_confirmation is True
    again = subscriber("back@example.com")
    assert (again.status, again.name, again.version) == (S.UNSUBSCRIBED, "Old", version)
    assert (again.confirm_due_at, again.confirm_name) == (result.due_at, "New")
    assert confirm(db.session, sub.id, version, name="New") is ConfirmOutcome.CONFIRMED
    db.session.commit()
    back = subscriber("back@example.com")
    assert (back.status, back.name, back.confirm_due_at) == (S.CONFIRMED, "New", None)


def test_erase_removes_the_person_and_their_history(app, make_subscriber):
    sub = make_subscriber("gone@example.com", name="Gone Person")
    unsubscribe(db.session, sub.id)
    db.session.commit()
    assert erase(db.session, "gone@example.com") is True
    db.session.commit()
    assert subscriber("gone@example.com") is None
    assert db.session.scalar(sa.select(sa.func.count()).select_from(SubscriberEvent)) == 0
    assert erase(db.session, "gone@example.com") is False


def test_import_reports_bad_rows_by_line_and_is_harmless_twice(app, make_subscriber):
    make_subscriber("out@example.com", status="unsubscribed")
    text = (
        "email,name\nA@example.com,Ann\nnot-an-address,Bad\nout@example.com,Out\nb@example.com,\n"
    )
    first = import_csv(db.session(), text, confirmed=True)
    assert (first.added, first.confirmed, first.errors[0][0]) == (2, 2, 3)
    second = import_csv(db.session(), text, confirmed=True)
    assert (second.added, second.confirmed, second.unchanged) == (0, 0, 3)
    assert subscriber("a@example.com").status is S.CONFIRMED
    assert subscriber("out@example.com").status is S.UNSUBSCRIBED  # nobody is brought back
