"""What readers do on their own page: rename, change address, pause, export, erase, leave.

Functions take a session and plain values (no Flask, no RQ) and never commit; the caller
does, then queues the mail a result says is owed. Status changes still go through
``state.transition``: a pause is no status, the reader stays confirmed and the sends skip them.

An address change is stored (``new_email``) and mailed to the new address; only that link makes
it the address, and the old address is then told. Asking for an address someone else already
has looks exactly the same from outside and stores and mails nothing: the page must not tell
who is on the list.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

from newsletter.errors import Conflict, Invalid
from newsletter.i18n import N_
from newsletter.models import (
    Bounce,
    Delivery,
    EventKind,
    Issue,
    Subscriber,
    SubscriberEvent,
    SubscriberStatus,
    utcnow,
)
from newsletter.subscribers.limits import take_confirmation
from newsletter.subscribers.links import AddressClaim
from newsletter.subscribers.state import Action, bump_stat, erase, transition
from newsletter.subscribers.validate import clean_name, normalize_email

S = SubscriberStatus

PAUSE_WEEKS = range(1, 13)


class Reason(StrEnum):
    """Why a reader left, as the unsubscribe page offers it (optional)."""

    TOO_MANY = "too_many"
    NOT_RELEVANT = "not_relevant"
    NEVER_SIGNED_UP = "never_signed_up"
    OTHER = "other"


# DailyStat kinds (at most 20 characters): the counts outlive the people who gave them.
REASON_STAT = "why:"
PAUSED_STAT = "paused"
ERASED_STAT = "erased"


def reader(session: Session, subscriber_id: int, *, lock: bool = False) -> Subscriber | None:
    """Return the subscriber a reader's link names, or None once they are erased."""
    return session.get(Subscriber, subscriber_id, with_for_update=lock)


def paused_until(sub: Subscriber, now: datetime) -> datetime | None:
    """Return when the reader's pause ends, or None if they are not paused now."""
    until = sub.paused_until
    return until if until is not None and until > now else None


def _history(session: Session, sub: Subscriber, kind: EventKind, now: datetime, **kw: Any) -> None:
    session.add(SubscriberEvent(subscriber=sub, kind=kind, at=now, **kw))


def rename(
    session: Session, sub: Subscriber, raw_name: object, *, now: datetime | None = None
) -> bool:
    """Set the reader's name from what they typed; return whether it changed; raise Invalid."""
    name = clean_name(raw_name)
    if name == sub.name:
        return False
    now = now or utcnow()
    sub.name = name
    _history(session, sub, EventKind.RENAMED, now)
    return True


# --- pausing ------------------------------------------------------------------------------------


def parse_weeks(raw: object) -> int:
    """Return the number of weeks a reader chose, 1 to 12; raise Invalid for anything else."""
    text = raw.strip() if isinstance(raw, str) else ""
    weeks = int(text) if text.isascii() and text.isdigit() and len(text) <= 2 else 0
    _check_weeks(weeks)
    return weeks


def _check_weeks(weeks: int) -> None:
    if weeks not in PAUSE_WEEKS:
        raise Invalid(
            "weeks",
            N_("Choose a break of %(low)s to %(high)s weeks."),
            low=PAUSE_WEEKS[0],
            high=PAUSE_WEEKS[-1],
        )


def pause(
    session: Session, sub: Subscriber, weeks: int, *, now: datetime | None = None
) -> datetime:
    """Skip the reader in every send for ``weeks`` weeks from now; return when that ends."""
    _check_weeks(weeks)
    if sub.status is not S.CONFIRMED:
        raise Conflict(N_("Only a subscribed reader can pause the tips."), field="weeks")
    now = now or utcnow()
    until = now + timedelta(weeks=weeks)
    sub.paused_until = until
    _history(session, sub, EventKind.PAUSED, now, detail=f"until {until.date().isoformat()}")
    bump_stat(session, PAUSED_STAT, now.date())
    return until


def resume(session: Session, sub: Subscriber, *, now: datetime | None = None) -> bool:
    """End the reader's pause now; return whether they were paused."""
    now = now or utcnow()
    was_paused = paused_until(sub, now) is not None
    sub.paused_until = None
    if was_paused:
        _history(session, sub, EventKind.RESUMED, now)
        if sub.evergreen and sub.evergreen_due_at is not None:
            sub.evergreen_due_at = min(sub.evergreen_due_at, now)  # the sequence goes on
    return was_paused


# --- leaving --------------------------------------------------------------------------------------


def parse_reason(raw: object) -> Reason | None:
    """Return the reason a reader picked, or None for none (or one we never offered)."""
    # Never a refusal: a reader who wants out is let out whatever the form carried.
    try:
        return Reason(raw) if isinstance(raw, str) and raw else None
    except ValueError:
        return None


def unsubscribe(
    session: Session,
    subscriber_id: int,
    *,
    reason: Reason | None = None,
    ip: str | None = None,
    detail: str = "",
    now: datetime | None = None,
) -> Subscriber | None:
    """Unsubscribe at once, counting the reason given; return the reader, None if erased."""
    sub = reader(session, subscriber_id, lock=True)
    if sub is None:
        return None
    now = now or utcnow()
    line = ", ".join(part for part in (detail, reason.value if reason else "") if part)
    if transition(session, sub, Action.UNSUBSCRIBE, ip=ip, detail=line, now=now):
        sub.paused_until = None  # a pause ends with the subscription, not after a comeback
        if reason is not None:
            bump_stat(session, REASON_STAT + reason.value, now.date())
    return sub


def erase_reader(session: Session, sub: Subscriber, typed: object) -> None:
    """Erase the reader if ``typed`` is their address; raise Invalid (changing nothing) if not."""
    try:
        same = normalize_email(typed) == sub.email
    except Invalid:
        same = False
    if not same:
        raise Invalid("erase", N_("That is not the address of this subscription."))
    bump_stat(session, ERASED_STAT, utcnow().date())
    erase(session, sub.email)


# --- the mailed link for data, erasing and a new address -----------------------------------------


def address_changed(session: Session, sub: Subscriber) -> bool:
    """Say whether the reader's address ever changed (links mailed before then name the old)."""
    found = session.scalar(
        sa.select(SubscriberEvent.id)
        .where(
            SubscriberEvent.subscriber_id == sub.id,
            SubscriberEvent.kind == EventKind.ADDRESS_CHANGED,
        )
        .limit(1)
    )
    return found is not None


def request_access_link(
    session: Session, sub: Subscriber, *, now: datetime | None = None
) -> datetime | None:
    """Count a mail of the page's full link to the reader's address; return when it was asked
    for, or None when the limits of confirmation mails hold it back (then mail nothing).
    """
    now = now or utcnow()
    # The daily cap of confirmation mails to one inbox: a forwarded link cannot mail-bomb the
    # reader. Not the cooldown: a reader who just confirmed an address may ask at once.
    savepoint = session.begin_nested()
    if not take_confirmation(session, sub.email, now, per_domain=False, since=now):
        savepoint.rollback()
        return None
    savepoint.commit()
    return now


# --- changing the address ---------------------------------------------------------------------


@dataclass(frozen=True)
class AddressRequest:
    """The answer to a change request; ``due_at`` names the owed mail (None: mail nothing)."""

    subscriber_id: int
    due_at: datetime | None = None


def request_address_change(
    session: Session,
    sub: Subscriber,
    raw_email: object,
    *,
    check_dns: bool = False,
    now: datetime | None = None,
) -> AddressRequest:
    """Ask the new address to confirm; raise Invalid for a bad or unchanged address.

    An address already on the list, or one whose inbox had its share of confirmation mails,
    stores and mails nothing; the caller answers the same as when the mail goes.
    """
    email = normalize_email(raw_email, check_dns=check_dns)
    if email == sub.email:
        raise Invalid("email", N_("That is already the address of this subscription."))
    now = now or utcnow()
    taken = session.scalar(sa.select(Subscriber.id).where(Subscriber.email == email))
    if taken is not None:
        return AddressRequest(sub.id)
    # The limits of sign-up confirmations: nobody can mail-bomb an inbox from this page.
    savepoint = session.begin_nested()
    if not take_confirmation(session, email, now):
        savepoint.rollback()
        return AddressRequest(sub.id)
    savepoint.commit()
    sub.new_email = email
    sub.new_email_due_at = now
    return AddressRequest(sub.id, now)


class AddressOutcome(StrEnum):
    CHANGED = "changed"  # just now: tell the old address
    ALREADY = "already"  # this link did it before
    TAKEN = "taken"  # someone else has that address now: nothing changed
    STALE = "stale"  # a later change or another request made this link void
    UNKNOWN = "unknown"  # no such subscriber (erased)


@dataclass(frozen=True)
class AddressChange:
    outcome: AddressOutcome
    # The notice to the old address, owed since then; None when none is owed.
    notice_due_at: datetime | None = None


def address_link_state(session: Session, claim: AddressClaim) -> AddressOutcome | None:
    """Say what pressing an address link would do: None if it would change the address."""
    sub = reader(session, claim.subscriber_id)
    if sub is None:
        return AddressOutcome.UNKNOWN
    if sub.email == claim.email and sub.new_email is None:
        return AddressOutcome.ALREADY
    if sub.version != claim.version or sub.new_email != claim.email:
        return AddressOutcome.STALE
    return None


def confirm_address_change(
    session: Session, claim: AddressClaim, *, ip: str | None = None, now: datetime | None = None
) -> AddressChange:
    """Make the claimed address the reader's, if the link is current and nobody else has it."""
    sub = reader(session, claim.subscriber_id, lock=True)
    if sub is None:
        return AddressChange(AddressOutcome.UNKNOWN)
    blocked = address_link_state(session, claim)
    if blocked is not None:
        return AddressChange(blocked)
    now = now or utcnow()
    old = sub.email
    try:
        # The unique index decides a race with a sign-up or another change to that address.
        with session.begin_nested():
            sub.email = claim.email
            session.flush()
    except sa.exc.IntegrityError:
        session.refresh(sub)
        sub.new_email = None
        sub.new_email_due_at = None
        return AddressChange(AddressOutcome.TAKEN)
    sub.new_email = None
    sub.new_email_due_at = None
    sub.old_email = old
    sub.old_email_due_at = now
    _history(session, sub, EventKind.ADDRESS_CHANGED, now, ip=ip)
    return AddressChange(AddressOutcome.CHANGED, now)


# --- their data ---------------------------------------------------------------------------------


def _when(value: datetime | None) -> str | None:
    return None if value is None else value.isoformat()


def export(session: Session, sub: Subscriber, *, now: datetime | None = None) -> dict[str, Any]:
    """Return everything stored about the reader, as JSON-ready values."""
    events = session.execute(
        sa.select(
            SubscriberEvent.kind, SubscriberEvent.at, SubscriberEvent.detail, SubscriberEvent.ip
        )
        .where(SubscriberEvent.subscriber_id == sub.id)
        .order_by(SubscriberEvent.at, SubscriberEvent.id)
    ).all()
    copies = session.execute(
        sa.select(Issue.id, Issue.subject, Delivery.status, Delivery.sent_at, Delivery.last_error)
        .join(Issue, Issue.id == Delivery.issue_id)
        .where(Delivery.subscriber_id == sub.id)
        .order_by(Delivery.id)
    ).all()
    bounces = session.execute(
        sa.select(Bounce.at, Bounce.kind, Bounce.source, Bounce.status_code, Bounce.diagnostic)
        .where(Bounce.subscriber_id == sub.id)
        .order_by(Bounce.at, Bounce.id)
    ).all()
    return {
        "exported_at": (now or utcnow()).isoformat(),
        "profile": {
            "email": sub.email,
            "name": sub.name,
            "status": sub.status.value,
            "source": sub.source,
            "created_at": _when(sub.created_at),
            "confirmed_at": _when(sub.confirmed_at),
            "unsubscribed_at": _when(sub.unsubscribed_at),
            "bounced_at": _when(sub.bounced_at),
            "paused_until": _when(sub.paused_until),
            "signup_ip": sub.signup_ip,
            # Not the address a change waits for: that one is not the reader's until it
            # confirms, and whether one was kept would tell who else is on the list.
        },
        "history": [
            {"kind": kind.value, "at": _when(at), "detail": detail, "ip": ip}
            for kind, at, detail, ip in events
        ],
        "deliveries": [
            {
                "issue_id": issue_id,
                "subject": subject,
                "status": status.value,
                "sent_at": _when(sent_at),
                "note": note,
            }
            for issue_id, subject, status, sent_at, note in copies
        ],
        "bounces": [
            {
                "at": _when(at),
                "kind": kind.value,
                "source": source,
                "status_code": code,
                "diagnostic": diagnostic,
            }
            for at, kind, source, code, diagnostic in bounces
        ],
    }
