"""An unconfirmed sign-up expires: it no longer blocks a reader's move to its address.

The squatter is aged in the database (as if it signed up days ago) and the real periodic tick
runs; rows with any history of a real subscription are never touched.
"""

from __future__ import annotations

from datetime import timedelta

import sqlalchemy as sa

from newsletter.extensions import db, settings
from newsletter.models import EventKind, Subscriber, SubscriberEvent, utcnow
from newsletter.subscribers import manage
from newsletter.subscribers.expiry import MARGIN
from newsletter.subscribers.links import AddressClaim
from newsletter.tasks.tick import scheduler_tick


def _signed_up(make_subscriber, email: str, days_ago: float, *more: EventKind) -> int:
    sub = make_subscriber(email, status="pending")
    for kind in (EventKind.SUBSCRIBED, EventKind.CONFIRMATION_SENT, *more):
        db.session.add(SubscriberEvent(subscriber_id=sub.id, kind=kind))
    then = utcnow() - timedelta(days=days_ago)
    db.session.execute(
        sa.update(Subscriber)
        .where(Subscriber.id == sub.id)
        .values(created_at=then, updated_at=then, confirm_sent_at=then)
    )
    db.session.commit()
    return sub.id


def _exists(sub_id: int) -> bool:
    db.session.expire_all()
    return db.session.get(Subscriber, sub_id) is not None


def test_a_squatting_sign_up_expires_and_the_reader_can_move_to_the_address(app, make_subscriber):
    expiry_days = (timedelta(seconds=settings().confirm_max_age) + MARGIN).days
    squatter = _signed_up(make_subscriber, "wanted@example.com", expiry_days + 1)
    reader = make_subscriber("mover@example.com")
    # While the sign-up holds the address, asking for it stores and mails nothing.
    assert manage.request_address_change(db.session(), reader, "wanted@example.com").due_at is None
    db.session.commit()

    assert "expired 1" in scheduler_tick()
    assert not _exists(squatter)
    reader = db.session.get(Subscriber, reader.id)
    asked = manage.request_address_change(db.session(), reader, "wanted@example.com")
    db.session.commit()
    assert asked.due_at is not None
    claim = AddressClaim(reader.id, reader.version, "wanted@example.com")
    change = manage.confirm_address_change(db.session(), claim)
    db.session.commit()
    assert change.outcome is manage.AddressOutcome.CHANGED
    assert db.session.get(Subscriber, reader.id).email == "wanted@example.com"


def test_recent_sign_ups_and_rows_with_history_are_kept(app, make_subscriber):
    expiry_days = (timedelta(seconds=settings().confirm_max_age) + MARGIN).days
    recent = _signed_up(make_subscriber, "recent@example.com", expiry_days - 1)
    edited = _signed_up(make_subscriber, "edited@example.com", 90, EventKind.EDITED)
    left = _signed_up(make_subscriber, "left@example.com", 90, EventKind.UNSUBSCRIBED)
    came_back = _signed_up(make_subscriber, "back@example.com", 90)
    db.session.execute(
        sa.update(Subscriber)
        .where(Subscriber.id == came_back)
        .values(confirmed_at=utcnow() - timedelta(days=400))
    )
    db.session.commit()
    assert "expired 0" in scheduler_tick()
    assert all(_exists(i) for i in (recent, edited, left, came_back))
