"""Record one bounce or complaint and apply what it means to the reader, in one place.

Every source ends here: an SMTP refusal while sending, and (later) a delivery status
notification, a complaint or a provider's webhook. A hard bounce marks the address bounced;
a soft one counts, and ``BOUNCE_SOFT_LIMIT`` of them in a row over different issues bounce
the address; a domain blocking us changes nothing about the reader.
"""

from __future__ import annotations

from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy.orm import Session

from newsletter.delivery.outcomes import BounceReport
from newsletter.models import (
    MAX_EMAIL_LENGTH,
    Bounce,
    BounceKind,
    Delivery,
    DeliveryStatus,
    Subscriber,
    rowcount,
    utcnow,
)
from newsletter.subscribers.state import Action, transition
from newsletter.subscribers.state import bounce as mark_bounced

RAW_LIMIT = 64 * 1024  # what is kept of a notification for editors to read

__all__ = ["BounceReport", "Reactivated", "reactivate", "record", "soft_in_a_row"]


def record(session: Session, report: BounceReport, soft_limit: int) -> bool:
    """Store the bounce and apply it; return whether the reader is now bounced by it."""
    session.add(
        Bounce(
            at=utcnow(),
            subscriber_id=report.subscriber_id,
            issue_id=report.issue_id,
            delivery_id=report.delivery_id,
            kind=report.kind,
            source=_storable(report.source)[:20],
            status_code=_storable(report.status_code)[:12],
            diagnostic=_storable(report.diagnostic)[:500],
            raw=_storable(report.raw[:RAW_LIMIT]),
        )
    )
    session.flush()
    if report.kind is BounceKind.HARD:
        return mark_bounced(session, report.subscriber_id, detail=_storable(report.diagnostic))
    if report.kind is BounceKind.SOFT and soft_in_a_row(session, report.subscriber_id, soft_limit):
        detail = f"{soft_limit} soft bounces in a row; last: {_storable(report.diagnostic)}"
        return mark_bounced(session, report.subscriber_id, detail=detail)
    return False


def soft_in_a_row(session: Session, subscriber_id: int, limit: int) -> bool:
    """Return whether the reader's last ``limit`` issues each soft-bounced (none undone)."""
    recent = (
        sa.select(Delivery.id)
        .where(
            Delivery.subscriber_id == subscriber_id,
            Delivery.status.in_((DeliveryStatus.SENT, DeliveryStatus.FAILED)),
        )
        .order_by(Delivery.issue_id.desc())
        .limit(limit)
        .subquery()
    )
    total = session.scalar(sa.select(sa.func.count()).select_from(recent)) or 0
    if total < limit:
        return False
    soft = session.scalar(
        sa.select(sa.func.count(sa.distinct(Bounce.delivery_id))).where(
            Bounce.delivery_id.in_(sa.select(recent.c.id)),
            Bounce.kind == BounceKind.SOFT,
            Bounce.undone_at.is_(None),
        )
    )
    return soft == limit


def _storable(text: str) -> str:
    # A notification is whatever a stranger sent: PostgreSQL refuses a NUL in text, and no
    # driver encodes a lone surrogate (undecodable bytes, as the email package keeps them).
    return text.replace("\x00", "\ufffd").encode("utf-8", "replace").decode("utf-8")


@dataclass(frozen=True)
class Reactivated:
    """What ``reactivate`` did: bounces marked undone, and whether the reader came back."""

    undone: int
    status_changed: bool


def reactivate(session: Session, subscriber_id: int, by: str) -> Reactivated | None:
    """Undo the reader's open bounces and bring a bounced reader back; None if erased.

    The bounce rows stay, stamped with who undid them and when, and the person's history
    gets the change. Complaints stay as they are: only the reader can take one back, by
    subscribing again. So does an address that bounced before it was ever confirmed (its
    confirmation mail bounced): confirming it now would be opting someone in for them.
    """
    sub = session.get(Subscriber, subscriber_id, with_for_update=True)
    if sub is None:
        return None
    if sub.confirmed_at is None:
        return Reactivated(0, False)
    undone = session.execute(
        sa.update(Bounce)
        .where(
            Bounce.subscriber_id == subscriber_id,
            Bounce.undone_at.is_(None),
            Bounce.kind != BounceKind.COMPLAINT,
        )
        .values(undone_at=utcnow(), undone_by=by[:MAX_EMAIL_LENGTH]),
        execution_options={"synchronize_session": False},
    )
    count = rowcount(undone)
    detail = f"reactivated by {by}; {count} bounce{'' if count == 1 else 's'} undone"
    changed = transition(session, sub, Action.REACTIVATE, detail=detail[:200])
    return Reactivated(count, changed)
