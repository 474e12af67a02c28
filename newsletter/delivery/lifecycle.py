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

# A copy taken back from a claim that ended without a word: the first still in flight of
# each claim (a chunk goes out in id order, one message at a time) may have been accepted;
# the rest of the chunk had not been tried. Only the first kind counts as a possible duplicate.
LEASE_EXPIRED = "lease expired; may have been sent"
OWNER_DIED = "its worker died; may have been sent"
LEASE_EXPIRED_UNSENT = "lease expired before it was tried"
OWNER_DIED_UNSENT = "its worker died before trying it"
# The line to the relay died between the message's last byte and the relay's answer.
ANSWER_LOST = "connection lost before the relay answered; may have been sent"
MAYBE_SENT = (LEASE_EXPIRED, OWNER_DIED, ANSWER_LOST)

# Called as listener(session, issue_id) when an issue becomes sent (webhooks register here).
ISSUE_SENT_LISTENERS: list[Callable[[Session, int], None]] = []
# Called as listener(session, issue_id, reason, automatic) when a send pauses.
ISSUE_PAUSED_LISTENERS: list[Callable[[Session, int, str, bool], None]] = []


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


def pause(
    session: Session, issue_id: int, reason: str = "paused by an editor", *, automatic: bool = False
) -> bool:
    """Stop handing out deliveries of a sending issue; what is in flight finishes.

    ``automatic``: the send paused itself (a refusal of us, too many refused readers).
    """
    moved = move_issue(session, issue_id, IssueMove.PAUSE, utcnow(), pause_reason=reason[:300])
    if moved:
        for listener in ISSUE_PAUSED_LISTENERS:  # e.g. webhooks; same transaction
            listener(session, issue_id, reason[:300], automatic)
    return moved


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


def _take_back(
    session: Session, where: list[sa.ColumnElement[bool]], maybe_sent: str, unsent: str
) -> int:
    """Put claimed rows back in the queue: the first of each claim marked ``maybe_sent``.

    Two statements, the marking first: on SQLite an UPDATE's subquery sees the rows the same
    statement already changed.
    """
    first = (
        sa.select(sa.func.min(Delivery.id))
        .where(Delivery.status == D.SENDING, *where)
        .group_by(Delivery.claimed_by)
    )
    back = {"status": D.QUEUED, "lease_until": None, "claimed_by": None}
    taken = rowcount(
        session.execute(
            sa.update(Delivery)
            .where(Delivery.id.in_(first.scalar_subquery()))
            .values(last_error=maybe_sent, **back)
            .execution_options(synchronize_session=False)
        )
    )
    return taken + rowcount(
        session.execute(
            sa.update(Delivery)
            .where(Delivery.status == D.SENDING, *where)
            .values(last_error=unsent, **back)
            .execution_options(synchronize_session=False)
        )
    )


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
    where = [Delivery.issue_id == issue_id, Delivery.claimed_by.in_(gone)]
    return _take_back(session, where, OWNER_DIED, OWNER_DIED_UNSENT)


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
        sa.select(Issue.id, Issue.status, Issue.relay_retry_at).where(
            Issue.status.in_((*ISSUE_ACTIVE, IssueStatus.CANCELLED)), Issue.queued_at.is_not(None)
        )
    ).all()
    for issue_id, status, relay_retry_at in live:
        report.reclaimed += _release_dead(session, issue_id, dead)
        expired = [Delivery.issue_id == issue_id, Delivery.lease_until < now]
        report.reclaimed += _take_back(session, expired, LEASE_EXPIRED, LEASE_EXPIRED_UNSENT)
        if status is IssueStatus.CANCELLED:
            _skip_cancelled(session, issue_id)
            continue
        if status is not IssueStatus.SENDING:
            continue
        if finish_if_done(session, issue_id, now):
            report.finished.append(issue_id)
            continue
        if relay_retry_at is not None and relay_retry_at > now:
            continue  # waiting for its relay: handed out again when the next try is due
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
