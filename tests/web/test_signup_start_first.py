"""The sign-up forms' `start=first`: the reader joins the sequence, due once they confirm."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa

from newsletter.extensions import db
from newsletter.models import Subscriber, SubscriberStatus
from newsletter.subscribers.state import Action, transition


def _row(app: Any, email: str) -> Subscriber:
    with app.app_context():
        sub = db.session.scalar(sa.select(Subscriber).where(Subscriber.email == email))
        assert sub is not None
        db.session.expunge(sub)
        db.session.remove()
        return sub


def test_the_embedded_form_and_the_box_put_a_new_reader_in_the_sequence(app):
    blog = app.test_client(use_cookies=False)
    for email, start in (("first@example.com", "first"), ("plain@example.com", None)):
        data = {"email": email, **({"start": start} if start else {})}
        answer = blog.post("/embed/subscribe", data=data)
        assert answer.status_code == 303
    first, plain = _row(app, "first@example.com"), _row(app, "plain@example.com")
    assert first.evergreen and first.evergreen_due_at is None  # nothing before confirming
    assert not plain.evergreen
    with app.app_context():
        sub = db.session.get(Subscriber, first.id)
        transition(db.session(), sub, Action.CONFIRM)
        db.session.commit()
    assert _row(app, "first@example.com").evergreen_due_at is not None


def test_any_other_value_is_the_box_left_unticked(app):
    blog = app.test_client(use_cookies=False)
    for value in ("", "yes", "FIRST", "first" * 100):
        answer = blog.post("/embed/subscribe", data={"email": "odd@example.com", "start": value})
        assert answer.status_code == 303
    assert not _row(app, "odd@example.com").evergreen


def test_a_sign_up_form_changes_nothing_for_a_confirmed_reader(app):
    with app.app_context():
        db.session.add(Subscriber(email="known@example.com", status=SubscriberStatus.CONFIRMED))
        db.session.commit()
        db.session.remove()
    blog = app.test_client(use_cookies=False)
    blog.post("/embed/subscribe", data={"email": "known@example.com", "start": "first"})
    assert not _row(app, "known@example.com").evergreen
