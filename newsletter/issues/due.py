"""Start what is due: scheduled issues whose time has come, and the weekly slot's ready issue.

Each start is the same snapshot as ``issues send`` (``delivery.plan.queue_issue``); the caller
hands the returned batches to workers. Two workers' ticks at once start nothing twice: the
snapshot is guarded by a conditional UPDATE and a slot is unique per issue.
"""

from __future__ import annotations

import logging
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from newsletter.config import Settings
from newsletter.delivery.issue_state import IssueMove, move_issue
from newsletter.delivery.plan import queue_issue
from newsletter.issues.schedule import due_slot
from newsletter.models import Issue, IssueStatus, rowcount

log = logging.getLogger(__name__)

NOBODY_SCHEDULED = "not sent at its scheduled time: there were no confirmed subscribers"


def start_due(session: Session, now: datetime, settings: Settings) -> list[tuple[int, int]]:
    """Start every issue due now; return (issue id, number of batches) for each one started."""
    started = _start_scheduled(session, now, settings.batch_size)
    slot = settings.weekly_slot
    slot_at = due_slot(now, slot, settings.slot_grace) if slot else None
    if slot_at is not None:
        started += _start_slot(session, now, slot_at, settings.batch_size)
    return started


def _start_scheduled(session: Session, now: datetime, batch_size: int) -> list[tuple[int, int]]:
    started = []
    due_ids = session.scalars(
        sa.select(Issue.id)
        .where(Issue.status == IssueStatus.SCHEDULED, Issue.scheduled_at <= now)
        .order_by(Issue.scheduled_at, Issue.id)
    ).all()
    session.commit()
    for issue_id in due_ids:
        result = queue_issue(session, issue_id, now, batch_size)
        if result.nobody:
            # Like `issues send`: nobody confirmed means no send. Back to draft, with the
            # reason shown, so the editor sees it and the tick does not retry it forever.
            move_issue(session, issue_id, IssueMove.UNSCHEDULE, now, pause_reason=NOBODY_SCHEDULED)
            session.commit()
            log.warning("scheduled issue %s not sent: no confirmed subscribers", issue_id)
            continue
        session.commit()
        if result.started:
            started.append((issue_id, result.batches))
    return started


def _start_slot(
    session: Session, now: datetime, slot_at: datetime, batch_size: int
) -> list[tuple[int, int]]:
    if session.scalar(sa.select(sa.func.count()).where(Issue.slot_at == slot_at)):
        return []
    # Oldest issue that was ready when the slot came; a later one waits for the next slot.
    ready = session.scalar(
        sa.select(Issue.id)
        .where(Issue.status == IssueStatus.READY, Issue.updated_at <= slot_at)
        .order_by(Issue.updated_at, Issue.id)
        .limit(1)
    )
    if ready is None:
        session.commit()
        return []
    try:
        took = rowcount(
            session.execute(
                sa.update(Issue)
                .where(Issue.id == ready, Issue.status == IssueStatus.READY)
                .values(slot_at=slot_at)
                .execution_options(synchronize_session=False)
            )
        )
        result = queue_issue(session, ready, now, batch_size)
        if took and result.nobody:
            # Nobody to send to: the issue stays ready (for this slot while its grace
            # lasts, then the next one), as `issues send` would leave it. The rollback
            # gives the slot back.
            session.rollback()
            log.warning("weekly slot: issue %s not sent: no confirmed subscribers", ready)
        elif took and result.started:
            session.commit()
            return [(ready, result.batches)]
        else:
            session.rollback()
    except IntegrityError:  # another worker's tick took this slot first
        session.rollback()
    return []
