"""What an editor does to one person: add them by hand, rename, retag, resend the
confirmation, change their status. Every change is written into the person's history.

Shared by the editor's pages, the API and the CLI. The caller commits, then queues the
confirmation mail a returned reservation time stands for.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.orm import Session

from newsletter.errors import Conflict, Invalid, NotFound
from newsletter.models import EventKind, Subscriber, SubscriberEvent, SubscriberStatus, utcnow
from newsletter.subscribers.signup import get_or_create, reserve_confirmation
from newsletter.subscribers.state import Action, transition
from newsletter.subscribers.tags import add_tags, set_tags

S = SubscriberStatus
MAX_REASON = 150
# The statuses an editor may set; "pending" only a sign-up makes.
EDITOR_STATUSES = (S.CONFIRMED, S.UNSUBSCRIBED, S.BOUNCED)


def clean_reason(raw: object) -> str:
    """Return the reason an editor gave for confirming someone, or raise Invalid."""
    value = " ".join(raw.split()) if isinstance(raw, str) else ""
    if not value:
        raise Invalid(
            "reason",
            "Say why this person counts as confirmed, e.g. 'signed up on paper at workshop 7'.",
        )
    if len(value) > MAX_REASON:
        raise Invalid("reason", "Keep the reason under %(limit)s characters.", limit=MAX_REASON)
    if any(not c.isprintable() for c in value):
        raise Invalid("reason", "The reason cannot contain control characters.")
    return value


def _get(session: Session, subscriber_id: int) -> Subscriber:
    sub = session.get(Subscriber, subscriber_id, with_for_update=True)
    if sub is None:
        raise NotFound("No subscriber with that number (they may have been erased).")
    return sub


def add_person(
    session: Session,
    email: str,
    name: str,
    tags: Sequence[str],
    *,
    reason: str | None,
    by: str,
    now: datetime | None = None,
) -> tuple[Subscriber, datetime | None]:
    """Add one person by hand (address and name already clean, tags parsed).

    With ``reason`` they are confirmed at once, the reason in their history; without it a
    confirmation mail is reserved within the sign-up form's limits. Return the person and
    when their confirmation mail is owed (None: none is). Raises Conflict, having added
    nothing, for an address already on the list.
    """
    now = now or utcnow()
    known = session.scalar(sa.select(Subscriber).where(Subscriber.email == email))
    if known is not None:
        raise Conflict(f"{email} is already on the list ({known.status.value}).")
    sub, created = get_or_create(session, email, name, None, "editor", now)
    if not created:
        raise Conflict(f"{email} is already on the list ({sub.status.value}).")
    add_tags(session, sub.id, tags, by=by)
    if reason is not None:
        transition(session, sub, Action.EDITOR_CONFIRM, detail=_by(by, reason), now=now)
        return sub, None
    due = reserve_confirmation(session, sub.id, email, now, record=True)
    return sub, due


def _by(by: str, reason: str) -> str:
    detail = f"by {by}: {reason}"
    return detail if len(detail) <= 200 else detail[:199] + "…"


def edit_person(
    session: Session,
    subscriber_id: int,
    *,
    name: str | None = None,
    tags: Sequence[str] | None = None,
    by: str,
) -> Subscriber:
    """Change a person's name and/or replace their tags; each change goes into the history."""
    sub = _get(session, subscriber_id)
    if name is not None and name != sub.name:
        sub.name = name
        session.add(SubscriberEvent(subscriber=sub, kind=EventKind.EDITED, detail=f"name ({by})"))
    if tags is not None:
        set_tags(session, sub.id, tags, by=by)
    return sub


def resend_confirmation(
    session: Session, subscriber_id: int, now: datetime | None = None
) -> datetime:
    """Reserve one more confirmation mail for a pending person, within the form's limits.

    Return when it is owed; raise Conflict when the person is not pending or the limits say
    enough mail went to this inbox for now.
    """
    now = now or utcnow()
    sub = _get(session, subscriber_id)
    if sub.status is not S.PENDING:
        raise Conflict(
            f"{sub.email} is {sub.status.value}; only a pending person is sent the confirmation."
        )
    due = reserve_confirmation(session, sub.id, sub.email, now, record=True)
    if due is None:
        raise Conflict(
            "A confirmation mail went to this inbox a short while ago, or its daily limit is "
            "reached; try again later."
        )
    return due


def change_status(
    session: Session,
    subscriber_id: int,
    target: str,
    *,
    reason: str | None,
    by: str,
) -> bool:
    """Set a person's status as an editor; return whether it changed.

    Confirmed needs a reason, recorded in the history, and is refused for someone who
    unsubscribed (only their own sign-up brings them back) or whose address bounced before
    it was ever confirmed. Raises Invalid or Conflict, having changed nothing.
    """
    try:
        wanted = S(target)
    except ValueError:
        raise Invalid("status", "Choose confirmed, unsubscribed or bounced.") from None
    if wanted not in EDITOR_STATUSES:
        raise Invalid("status", "Only a sign-up makes someone pending; choose another status.")
    sub = _get(session, subscriber_id)
    if sub.status is wanted:
        return False
    if wanted is S.CONFIRMED:
        if sub.status is S.UNSUBSCRIBED:
            raise Conflict(f"{sub.email} unsubscribed; only their own sign-up can bring them back.")
        if sub.status is S.BOUNCED and sub.confirmed_at is None:
            raise Conflict(
                f"{sub.email} bounced before ever confirming; only their own sign-up can "
                "confirm it."
            )
        why = clean_reason(reason)
        action = Action.EDITOR_CONFIRM if sub.status is S.PENDING else Action.REACTIVATE
        return transition(session, sub, action, detail=_by(by, why))
    action = Action.UNSUBSCRIBE if wanted is S.UNSUBSCRIBED else Action.BOUNCE
    if not transition(session, sub, action, detail=f"by {by}"[:200]):
        raise Conflict(f"{sub.email} is {sub.status.value}; they cannot become {wanted.value}.")
    return True
