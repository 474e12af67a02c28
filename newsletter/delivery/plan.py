"""Plan a send: snapshot the issue's audience into one delivery row each, once per issue."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.orm import Session

from newsletter.delivery.audience import audience, paused, paused_note
from newsletter.delivery.issue_state import IssueMove, move_issue
from newsletter.models import (
    Delivery,
    DeliveryStatus,
    Issue,
    IssueStatus,
    IssueTag,
    Subscriber,
    refresh_statistics,
)

D = DeliveryStatus


@dataclass(frozen=True)
class QueueResult:
    started: bool
    audience: int
    batches: int
    status: IssueStatus
    # Nobody to send to: the plan changed nothing, and the issue keeps ``status``.
    nobody: bool = False


def queue_issue(session: Session, issue_id: int, now: datetime, batch_size: int) -> QueueResult:
    """Snapshot the issue's audience into deliveries and mark the issue sending.

    An issue with a segment (its IssueTag rows) goes to the confirmed readers with any of
    those tags. Readers paused at ``now`` are in the snapshot already skipped, with the
    reason. With nobody in the audience the issue is left as it was and the result says ``nobody``.

    Only one caller can move the issue out of draft/ready/scheduled, so twenty simultaneous
    calls start one send. The caller commits.
    """
    # A savepoint, so that "nobody to send to" undoes the move and leaves the issue as it was.
    snapshot = session.begin_nested()
    if not move_issue(session, issue_id, IssueMove.QUEUE, now):
        snapshot.rollback()
        status = session.scalar(sa.select(Issue.status).where(Issue.id == issue_id))
        return QueueResult(False, 0, 0, status or IssueStatus.CANCELLED)
    segment = session.scalars(sa.select(IssueTag.tag_id).where(IssueTag.issue_id == issue_id)).all()
    rank = sa.func.row_number().over(order_by=Subscriber.id)
    # A paused reader is in the snapshot as skipped, the reason on the row: the send's
    # counts show them, and nobody claims them.
    skipped = paused(now)
    rows = audience(
        sa.literal(issue_id),
        Subscriber.id,
        (rank - 1) // batch_size,
        sa.case((skipped, sa.literal(D.SKIPPED.value)), else_=sa.literal(D.QUEUED.value)),
        sa.literal(0),
        sa.case((skipped, paused_note(session.get_bind().dialect.name)), else_=sa.literal("")),
        tags=segment,
    )
    session.execute(
        sa.insert(Delivery).from_select(
            ["issue_id", "subscriber_id", "batch", "status", "attempts", "last_error"], rows
        )
    )
    # Counted, not taken from rowcount: drivers disagree on it for INSERT ... SELECT.
    count = session.scalar(sa.select(sa.func.count()).where(Delivery.issue_id == issue_id)) or 0
    if not count:
        snapshot.rollback()
        status = session.scalar(sa.select(Issue.status).where(Issue.id == issue_id))
        return QueueResult(False, 0, 0, status or IssueStatus.CANCELLED, nobody=True)
    batches = -(-count // batch_size)
    # The claims that follow read these rows: give the planner their statistics now rather
    # than when autovacuum comes by (the statements are written to be safe without them).
    refresh_statistics(session, "delivery")
    session.execute(
        sa.update(Issue)
        .where(Issue.id == issue_id)
        .values(audience=count, batches=batches)
        .execution_options(synchronize_session=False)
    )
    snapshot.commit()
    return QueueResult(True, count, batches, IssueStatus.SENDING)
