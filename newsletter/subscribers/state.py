"""The subscription state machine: the transition table, and confirm, unsubscribe, bounce, erase.

Every status change goes through ``transition``, checked against ``TRANSITIONS``. Functions
take a SQLAlchemy session and plain values: no Flask request, no RQ. A sign-up, which changes
no one's status, is in ``signup.py``.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import date, datetime
from enum import StrEnum
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from newsletter.models import (
    ConfirmLimit,
    DailyStat,
    EventKind,
    Subscriber,
    SubscriberEvent,
    SubscriberStatus,
    WebhookDelivery,
    utcnow,
)
from newsletter.subscribers.limits import confirm_quota

S = SubscriberStatus

# Who a sign-up may mail a confirmation link to: everyone not on the list right now.
CONFIRMABLE = frozenset({S.PENDING, S.UNSUBSCRIBED, S.BOUNCED})


class Action(StrEnum):
    CONFIRM = "confirm"
    UNSUBSCRIBE = "unsubscribe"
    BOUNCE = "bounce"
    IMPORT_CONFIRMED = "import_confirmed"
    REACTIVATE = "reactivate"  # an editor undoes a bounce
    EDITOR_CONFIRM = "editor_confirm"  # an editor vouches for an opt-in, with a reason


# (from, action) -> to. Anything not listed is not a change.
TRANSITIONS: dict[tuple[SubscriberStatus, Action], SubscriberStatus] = {
    (S.PENDING, Action.CONFIRM): S.CONFIRMED,
    (S.PENDING, Action.UNSUBSCRIBE): S.UNSUBSCRIBED,
    (S.PENDING, Action.BOUNCE): S.BOUNCED,
    (S.PENDING, Action.IMPORT_CONFIRMED): S.CONFIRMED,
    (S.PENDING, Action.EDITOR_CONFIRM): S.CONFIRMED,
    (S.CONFIRMED, Action.UNSUBSCRIBE): S.UNSUBSCRIBED,
    (S.CONFIRMED, Action.BOUNCE): S.BOUNCED,
    # Coming back: the sign-up changed nothing; the link it mailed, once confirmed, does this.
    (S.UNSUBSCRIBED, Action.CONFIRM): S.CONFIRMED,
    (S.BOUNCED, Action.CONFIRM): S.CONFIRMED,
    (S.BOUNCED, Action.REACTIVATE): S.CONFIRMED,
}

# What each arrival is counted as in the daily stats and the person's history.
_EVENT_FOR = {
    S.CONFIRMED: EventKind.CONFIRMED,
    S.UNSUBSCRIBED: EventKind.UNSUBSCRIBED,
    S.BOUNCED: EventKind.BOUNCED,
}
_STAMP_FOR = {
    S.CONFIRMED: "confirmed_at",
    S.UNSUBSCRIBED: "unsubscribed_at",
    S.BOUNCED: "bounced_at",
}


# DailyStat kinds beside the plain transitions (each at most 20 characters). The confirmation
# rate is over sign-ups that were asked to confirm: imports (``IMPORTED_STAT``) and people
# confirmed without their own click (``UNASKED_STAT`` off the sign-ups,
# ``CONFIRMED_UNASKED_STAT`` off the confirmations) stay out of it.
IMPORTED_STAT = "new:import"
UNASKED_STAT = "new:unasked"
CONFIRMED_UNASKED_STAT = "confirmed:unasked"
# Who left by which door: "left:" + one of ``DOORS``.
LEFT_STAT = "left:"
DOORS = ("one-click", "page", "complaint", "bounce", "editor", "import")


def door(target: SubscriberStatus, detail: str) -> str:
    """Return the door a reader left by, from the status reached and the history's detail."""
    if detail.startswith("by "):
        return "editor"
    if target is S.BOUNCED:
        return "bounce"
    if detail.endswith("in the imported file"):
        return "import"
    first = detail.split(",")[0].strip()
    return first if first in ("one-click", "page", "complaint") else "editor"


def _count_transition(
    session: Session, sub: Subscriber, was: SubscriberStatus, action: Action, day: date, detail: str
) -> None:
    target = sub.status
    if target is S.CONFIRMED:
        asked = action is Action.CONFIRM and was is S.PENDING and sub.source != "import"
        if not asked:
            bump_stat(session, CONFIRMED_UNASKED_STAT, day)
            if was is S.PENDING and sub.source != "import":
                bump_stat(session, UNASKED_STAT, day)
    else:
        bump_stat(session, LEFT_STAT + door(target, detail), day)


# Called as listener(session, subscriber, new_status, detail) after every status change,
# inside the same transaction (webhooks register here); keep them quick, they must not commit.
# ``detail`` is the history line's reason ("complaint" for a spam report).
LISTENERS: list[Callable[[Session, Subscriber, SubscriberStatus, str], None]] = []


def dialect_insert(dialect: str) -> Any:
    """Return the dialect's INSERT, the one with ON CONFLICT."""
    return postgresql.insert if dialect == "postgresql" else sqlite.insert


def bump_stat(session: Session, kind: str, day: date, n: int = 1) -> None:
    """Add ``n`` to the day's count of ``kind``, in one upsert that concurrent writers can share."""
    stmt = dialect_insert(session.get_bind().dialect.name)(DailyStat).values(
        day=day, kind=kind, count=n
    )
    stmt = stmt.on_conflict_do_update(
        index_elements=["day", "kind"], set_={"count": DailyStat.count + n}
    )
    session.execute(stmt)


def transition(
    session: Session,
    sub: Subscriber,
    action: Action,
    *,
    ip: str | None = None,
    detail: str = "",
    now: datetime | None = None,
) -> bool:
    """Apply ``action`` to ``sub`` if the table allows it; return whether the status changed."""
    target = TRANSITIONS.get((sub.status, action))
    if target is None:
        return False
    now = now or utcnow()
    was = sub.status
    sub.status = target
    sub.version += 1
    if stamp := _STAMP_FOR.get(target):
        setattr(sub, stamp, now)
    # A request to come back made before this change is void: its link is stale anyway.
    sub.confirm_due_at = None
    sub.confirm_name = None
    # A pause belongs to one stretch on the list: whoever leaves (by any door: the page, a
    # mail provider's button, a complaint, a bounce) and comes back gets mail again.
    sub.paused_until = None
    # A reader in the evergreen sequence who (re)confirms gets their next tip now: the
    # sequence goes on where it stopped (a reader who left it stays out).
    if target is S.CONFIRMED and sub.evergreen:
        sub.evergreen_due_at = now
    kind = _EVENT_FOR[target]
    session.add(SubscriberEvent(subscriber=sub, kind=kind, at=now, ip=ip, detail=detail))
    bump_stat(session, kind.value, now.date())
    _count_transition(session, sub, was, action, now.date(), detail)
    for listener in LISTENERS:
        listener(session, sub, target, detail)
    return True


class ConfirmOutcome(StrEnum):
    CONFIRMED = "confirmed"  # just now: send the welcome mail
    ALREADY = "already"  # was confirmed before: nothing to do
    STALE = "stale"  # the link belongs to an earlier state (e.g. before an unsubscribe)
    UNKNOWN = "unknown"  # no such subscriber (erased)


def confirm(
    session: Session,
    subscriber_id: int,
    version: int,
    *,
    name: str | None = None,
    ip: str | None = None,
    now: datetime | None = None,
) -> ConfirmOutcome:
    """Confirm the subscriber a confirm token names, if the token matches their current state.

    ``name``, carried by the token, becomes their name. A welcome mail is then owed from ``now``.
    """
    sub = session.get(Subscriber, subscriber_id, with_for_update=True)
    if sub is None:
        return ConfirmOutcome.UNKNOWN
    if sub.status is S.CONFIRMED:
        return ConfirmOutcome.ALREADY
    if sub.version != version or sub.status not in CONFIRMABLE:
        return ConfirmOutcome.STALE
    now = now or utcnow()
    if name:
        sub.name = name
    transition(session, sub, Action.CONFIRM, ip=ip, now=now)
    sub.welcome_due_at = now
    return ConfirmOutcome.CONFIRMED


def unsubscribe(
    session: Session, subscriber_id: int, *, ip: str | None = None, detail: str = ""
) -> Subscriber | None:
    """Unsubscribe at once; harmless when already out. Return the subscriber, or None if erased."""
    sub = session.get(Subscriber, subscriber_id, with_for_update=True)
    if sub is None:
        return None
    transition(session, sub, Action.UNSUBSCRIBE, ip=ip, detail=detail)
    return sub


def bounce(session: Session, subscriber_id: int, detail: str = "") -> bool:
    """Mark an address bounced after a permanent SMTP failure; return whether it changed."""
    sub = session.get(Subscriber, subscriber_id, with_for_update=True)
    if sub is None:
        return False
    return transition(session, sub, Action.BOUNCE, detail=detail[:200])


def erase(session: Session, email: str) -> bool:
    """Delete every row that holds this person's address or name; return whether they existed."""
    sub = session.scalar(sa.select(Subscriber).where(Subscriber.email == email))
    if sub is None:
        return False
    # Webhook payloads copy the address: they go too.
    session.execute(
        sa.delete(WebhookDelivery).where(
            sa.or_(
                WebhookDelivery.payload.contains(f'"email": "{email}"'),
                WebhookDelivery.payload.contains(f'"subscriber_id": {sub.id},'),
                WebhookDelivery.payload.contains(f'"subscriber_id": {sub.id}}}'),
            )
        )
    )
    # The mailbox's mail counter is keyed by a hash of the address: it goes as well.
    session.execute(
        sa.delete(ConfirmLimit).where(ConfirmLimit.key == confirm_quota(email, utcnow()).mailbox)
    )
    session.delete(sub)
    return True
