"""Sign-ups nobody confirmed expire, so they cannot hold an address for ever.

A pending row whose confirmation link ran out long ago (``CONFIRM_MAX_AGE`` plus a day, both
since it was made and since its last confirmation mail) and that has no history of a real
subscription (never confirmed, no copy sent, no bounce, no event past signing up) is deleted
by the periodic tick. Until then it still blocks a reader's move to that address, as any row
does; after, the address is free again. The DELETE names every condition, so a row that a new
sign-up refreshed a moment ago is left alone.
"""

from __future__ import annotations

from datetime import datetime, timedelta

import sqlalchemy as sa
from sqlalchemy.orm import Session

from newsletter.models import (
    Bounce,
    Delivery,
    EventKind,
    Subscriber,
    SubscriberEvent,
    SubscriberStatus,
)

# Past the link's own age: clocks differ and a reader may press it at the last moment.
MARGIN = timedelta(days=1)
# Events an unconfirmed sign-up has; any other kind is history worth keeping.
SIGNUP_EVENTS = (EventKind.SUBSCRIBED, EventKind.CONFIRMATION_SENT)


def expired_before(now: datetime, confirm_max_age: int) -> datetime:
    """Return the moment before which an unconfirmed sign-up has expired."""
    return now - timedelta(seconds=confirm_max_age) - MARGIN


def expire_pending(session: Session, before: datetime) -> int:
    """Delete unconfirmed sign-ups older than ``before`` with no history; return how many."""
    history = sa.exists().where(
        SubscriberEvent.subscriber_id == Subscriber.id,
        SubscriberEvent.kind.not_in(SIGNUP_EVENTS),
    )
    copies = sa.exists().where(Delivery.subscriber_id == Subscriber.id)
    bounces = sa.exists().where(Bounce.subscriber_id == Subscriber.id)
    result = session.execute(
        sa.delete(Subscriber)
        .where(
            Subscriber.status == SubscriberStatus.PENDING,
            Subscriber.confirmed_at.is_(None),
            Subscriber.unsubscribed_at.is_(None),
            Subscriber.bounced_at.is_(None),
            Subscriber.created_at < before,
            Subscriber.updated_at < before,
            sa.or_(Subscriber.confirm_sent_at.is_(None), Subscriber.confirm_sent_at < before),
            ~history,
            ~copies,
            ~bounces,
        )
        .execution_options(synchronize_session=False)
    )
    return int(getattr(result, "rowcount", 0) or 0)
