"""A send's life after it starts: finish, pause, resume, cancel, and the reconciler's sweep."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

from newsletter.delivery.issue_state import IssueMove, move_issue
from newsletter.models import (
    ISSUE_ACTIVE,
    Delivery,
    DeliveryStatus,
    Issue,
    IssueStatus,
    rowcount,
    utcnow,
)

D = DeliveryStatus

LEASE_EXPIRED = "lease expired; may have been sent"
OWNER_DIED = "its worker died; may have been sent"

# Called as listener(session, issue_id) when an issue becomes sent (webhooks register here).
ISSUE_SENT_LISTENERS: list[Callable[[Session, int], None]] = []


def finish_if_done(session: Session, issue_id: int, now: datetime) -> bool:
    """Mark a sending issue sent once no delivery is queued or in flight."""
    open_work = sa.exists().where(
        Delivery.issue_id == issue_id, Delivery.status.in_((D.QUEUED, D.SENDING))
    )
    finished = move_issue(session, issue_id, IssueMove.FINISH, now, where=[~open_work])
    if finished:
        for listener in ISSUE_SENT_LISTENERS:  # e.g. webhooks; same transaction
            listener(session, issue_id)
    return finished


def pause(session: Session, issue_id: int, reason: str = "paused by an editor") -> bool:
    """Stop handing out deliveries of a sending issue; what is in flight finishes."""
    return move_issue(session, issue_id, IssueMove.PAUSE, utcnow(), pause_reason=reason[:300])


def resume(session: Session, issue_id: int) -> bool:
    """Let a paused issue's deliveries be claimed again (the caller re-dispatches batches)."""
    # A retry that was waiting keeps its time; nothing else changes, so nobody is skipped.
    return move_issue(session, issue_id, IssueMove.RESUME, utcnow())


def cancel(session: Session, issue_id: int) -> bool:
    """Cancel an issue: queued deliveries become skipped ('cancelled'); in-flight ones finish."""
    moved = move_issue(session, issue_id, IssueMove.CANCEL, utcnow())
    if moved:
        _skip_cancelled(session, issue_id)
    return moved


def _skip_cancelled(session: Session, issue_id: int, *also: Any) -> int:
    return rowcount(
        session.execute(
            sa.update(Delivery)
            .where(Delivery.issue_id == issue_id, Delivery.status == D.QUEUED, *also)
            .values(status=D.SKIPPED, last_error="cancelled", claimed_by=None, lease_until=None)
            .execution_options(synchronize_session=False)
        )
    )


def skip_if_cancelled(session: Session, issue_id: int) -> int:
    """Skip ('cancelled') the queued copies of an issue if it is cancelled; return how many.

    A worker that gave back the rest of its chunk after seeing a pause or cancel calls this
    after committing the give-back, so copies released after the cancel's own skip are not
    left queued until the reconciler's next sweep.
    """
    cancelled = sa.exists().where(Issue.id == issue_id, Issue.status == IssueStatus.CANCELLED)
    return _skip_cancelled(session, issue_id, cancelled)


def claim_owner_of(claim_id: str) -> str:
    """Return the process part of a claim id (``<owner>:<batch run>:<chunk>``)."""
    return claim_id.split(":", 1)[0]


def _release_dead(session: Session, issue_id: int, dead: Callable[[str], bool]) -> int:
    """Give back at once the rows whose owning process is known to have died."""
    claims = session.scalars(
        sa.select(Delivery.claimed_by)
        .where(Delivery.issue_id == issue_id, Delivery.status == D.SENDING)
        .distinct()
    ).all()
    gone = [c for c in claims if c and dead(claim_owner_of(c))]
    if not gone:
        return 0
    return rowcount(
        session.execute(
            sa.update(Delivery)
            .where(
                Delivery.issue_id == issue_id,
                Delivery.status == D.SENDING,
                Delivery.claimed_by.in_(gone),
            )
            .values(status=D.QUEUED, lease_until=None, claimed_by=None, last_error=OWNER_DIED)
            .execution_options(synchronize_session=False)
        )
    )


def _never(_owner: str) -> bool:
    return False


@dataclass
class Reconciliation:
    reclaimed: int = 0
    finished: list[int] = field(default_factory=list)
    due: list[tuple[int, int]] = field(default_factory=list)  # (issue_id, batch) with work due


def reconcile(
    session: Session, now: datetime, dead: Callable[[str], bool] = _never
) -> Reconciliation:
    """Take back expired leases and dead workers' claims, close finished sends, list due work.

    ``dead(owner)`` is True for a claim owner known to have exited: its rows go back at once
    instead of after their lease.
    """
    report = Reconciliation()
    live = session.execute(
        sa.select(Issue.id, Issue.status).where(
            Issue.status.in_((*ISSUE_ACTIVE, IssueStatus.CANCELLED)), Issue.queued_at.is_not(None)
        )
    ).all()
    for issue_id, status in live:
        report.reclaimed += _release_dead(session, issue_id, dead)
        report.reclaimed += rowcount(
            session.execute(
                sa.update(Delivery)
                .where(
                    Delivery.issue_id == issue_id,
                    Delivery.status == D.SENDING,
                    Delivery.lease_until < now,
                )
                .values(
                    status=D.QUEUED, lease_until=None, claimed_by=None, last_error=LEASE_EXPIRED
                )
                .execution_options(synchronize_session=False)
            )
        )
        if status is IssueStatus.CANCELLED:
            _skip_cancelled(session, issue_id)
            continue
        if status is not IssueStatus.SENDING:
            continue
        if finish_if_done(session, issue_id, now):
            report.finished.append(issue_id)
            continue
        due = sa.or_(Delivery.next_attempt_at.is_(None), Delivery.next_attempt_at <= now)
        batches = session.scalars(
            sa.select(Delivery.batch)
            .where(Delivery.issue_id == issue_id, Delivery.status == D.QUEUED, due)
            .distinct()
            .order_by(Delivery.batch)
        ).all()
        report.due.extend((issue_id, b) for b in batches)
    return report


def batches_with_work(session: Session, issue_id: int) -> list[int]:
    """Return the batches of an issue that still have queued deliveries."""
    return list(
        session.scalars(
            sa.select(Delivery.batch)
            .where(Delivery.issue_id == issue_id, Delivery.status == D.QUEUED)
            .distinct()
            .order_by(Delivery.batch)
        ).all()
    )


def next_retry_at(session: Session, issue_id: int, batch: int) -> datetime | None:
    """Return when the batch's earliest waiting retry falls due."""
    return session.scalar(
        sa.select(sa.func.min(Delivery.next_attempt_at)).where(
            Delivery.issue_id == issue_id, Delivery.batch == batch, Delivery.status == D.QUEUED
        )
    )
