"""Plan a send: snapshot the confirmed subscribers into one delivery row each, once per issue."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.orm import Session

from newsletter.delivery.claims import paused_note
from newsletter.delivery.issue_state import IssueMove, move_issue
from newsletter.models import (
    Delivery,
    DeliveryStatus,
    Issue,
    IssueStatus,
    Subscriber,
    SubscriberStatus,
)

D = DeliveryStatus


@dataclass(frozen=True)
class QueueResult:
    started: bool
    audience: int
    batches: int
    status: IssueStatus


def queue_issue(session: Session, issue_id: int, now: datetime, batch_size: int) -> QueueResult:
    """Snapshot the confirmed subscribers into deliveries and mark the issue sending.

    Readers paused at ``now`` are in the snapshot already skipped, with the reason.

    Only one caller can move the issue out of draft/ready/scheduled, so twenty simultaneous
    calls start one send. The caller commits (or rolls back, e.g. when nobody is confirmed).
    """
    if not move_issue(session, issue_id, IssueMove.QUEUE, now):
        status = session.scalar(sa.select(Issue.status).where(Issue.id == issue_id))
        return QueueResult(False, 0, 0, status or IssueStatus.CANCELLED)
    rank = sa.func.row_number().over(order_by=Subscriber.id)
    # A paused reader is in the snapshot as skipped, the reason on the row: the send's
    # counts show them, and nobody claims them.
    paused = Subscriber.paused_until > now
    snapshot = sa.select(
        sa.literal(issue_id),
        Subscriber.id,
        (rank - 1) // batch_size,
        sa.case((paused, sa.literal(D.SKIPPED.value)), else_=sa.literal(D.QUEUED.value)),
        sa.literal(0),
        sa.case((paused, paused_note(session.get_bind().dialect.name)), else_=sa.literal("")),
    ).where(Subscriber.status == SubscriberStatus.CONFIRMED)
    session.execute(
        sa.insert(Delivery).from_select(
            ["issue_id", "subscriber_id", "batch", "status", "attempts", "last_error"], snapshot
        )
    )
    # Counted, not taken from rowcount: drivers disagree on it for INSERT ... SELECT.
    audience = session.scalar(sa.select(sa.func.count()).where(Delivery.issue_id == issue_id)) or 0
    batches = -(-audience // batch_size)
    session.execute(
        sa.update(Issue)
        .where(Issue.id == issue_id)
        .values(audience=audience, batches=batches)
        .execution_options(synchronize_session=False)
    )
    return QueueResult(True, audience, batches, IssueStatus.SENDING)
