"""An issue's states: the table of allowed moves and the one function that writes a status.

Every change of ``Issue.status`` goes through ``move_issue``: one conditional UPDATE whose
WHERE names the states the move may start from, so two callers racing for the same move
(two ticks, a double click, a cancel during a pause) change the row once, and the loser is
told so. No Flask and no RQ: the engine, the jobs and the editor's actions all call it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

from newsletter.models import ISSUE_ACTIVE, ISSUE_UNSENT, Issue, IssueStatus, rowcount


class IssueMove(StrEnum):
    SCHEDULE = "schedule"  # wait for a given time (a new time for a scheduled one)
    MARK_READY = "mark_ready"  # wait for the next weekly slot
    QUEUE = "queue"  # the snapshot is taken: the send starts
    UNSCHEDULE = "unschedule"  # its time came with nobody to send to: back to draft
    PAUSE = "pause"
    RESUME = "resume"
    FINISH = "finish"  # no copy left queued or in flight
    CANCEL = "cancel"


@dataclass(frozen=True)
class Move:
    sources: tuple[IssueStatus, ...]  # the states the move may start from
    target: IssueStatus
    # The columns that change with the status, given the moment of the move.
    also: Callable[[datetime], dict[str, Any]]


def _nothing(_now: datetime) -> dict[str, Any]:
    return {}


# move -> (from which states, to which state, what else changes). Anything else is refused.
MOVES: dict[IssueMove, Move] = {
    # The caller gives scheduled_at.
    IssueMove.SCHEDULE: Move(ISSUE_UNSENT, IssueStatus.SCHEDULED, _nothing),
    IssueMove.MARK_READY: Move(
        (IssueStatus.DRAFT, IssueStatus.SCHEDULED),
        IssueStatus.READY,
        lambda _now: {"scheduled_at": None},
    ),
    IssueMove.QUEUE: Move(
        ISSUE_UNSENT, IssueStatus.SENDING, lambda now: {"queued_at": now, "pause_reason": ""}
    ),
    # The caller gives pause_reason: the editor sees why it did not go.
    IssueMove.UNSCHEDULE: Move(
        (IssueStatus.SCHEDULED,), IssueStatus.DRAFT, lambda _now: {"scheduled_at": None}
    ),
    # The caller gives pause_reason.
    IssueMove.PAUSE: Move((IssueStatus.SENDING,), IssueStatus.PAUSED, _nothing),
    IssueMove.RESUME: Move(
        (IssueStatus.PAUSED,), IssueStatus.SENDING, lambda _now: {"pause_reason": ""}
    ),
    IssueMove.FINISH: Move((IssueStatus.SENDING,), IssueStatus.SENT, lambda now: {"sent_at": now}),
    IssueMove.CANCEL: Move(
        (*ISSUE_UNSENT, *ISSUE_ACTIVE), IssueStatus.CANCELLED, lambda _now: {"scheduled_at": None}
    ),
}


def allowed(status: IssueStatus, move: IssueMove) -> IssueStatus | None:
    """Return where ``move`` takes an issue in ``status``, or None if the table refuses it."""
    rule = MOVES[move]
    return rule.target if status in rule.sources else None


def move_issue(
    session: Session,
    issue_id: int,
    move: IssueMove,
    now: datetime,
    *,
    where: Iterable[sa.ColumnElement[bool]] = (),
    **values: Any,
) -> bool:
    """Apply ``move`` to the issue if its status allows it; return whether the row moved.

    One conditional UPDATE: the status, ``updated_at`` and the columns that go with the move
    change together or not at all. ``where`` adds conditions (e.g. no copy left in flight);
    ``values`` are the columns the caller decides (a pause's reason, a schedule's time).
    The caller commits.
    """
    rule = MOVES[move]
    status = (
        Issue.status == rule.sources[0]
        if len(rule.sources) == 1
        else Issue.status.in_(rule.sources)
    )
    changes = {"status": rule.target, "updated_at": now, **rule.also(now), **values}
    moved = rowcount(
        session.execute(
            sa.update(Issue)
            .where(Issue.id == issue_id, status, *where)
            .values(**changes)
            .execution_options(synchronize_session=False)
        )
    )
    return moved == 1
