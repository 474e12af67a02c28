"""The evergreen sequence: readers who chose to start from the first tip get the back catalogue.

The sequence is every archived or sent issue, oldest first (its original date for an
imported tip), or the tips the editor chose in their order (``sequence_choice``). A reader
in it has a due time (``evergreen_due_at``, indexed); a tick takes
at most ``limit`` due readers, gives each one their next tip as a row of the same delivery
ledger (batch ``EVERGREEN_BATCH``) and moves their due time on by their pace, all in one
transaction. The rows then go out through the same claims, leases, retries and refusal
handling as a live send (``run_batch``); the ledger's one row per (issue, reader) is what
makes each tip go once: a tip the reader already has, live or from the sequence, is passed
over. A copy skipped because the reader had paused or left is given out again when they
are back.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import cast

import sqlalchemy as sa
from sqlalchemy.orm import Session

from newsletter.delivery.lifecycle import (
    LEASE_EXPIRED,
    LEASE_EXPIRED_UNSENT,
    OWNER_DIED,
    OWNER_DIED_UNSENT,
    _take_back,
    claim_owner_of,
)
from newsletter.delivery.sequence_choice import sequence
from newsletter.models import (
    Delivery,
    DeliveryStatus,
    Issue,
    IssueStatus,
    Subscriber,
    SubscriberStatus,
)

D = DeliveryStatus

# The batch number of every evergreen copy: live sends number their batches from 0.
EVERGREEN_BATCH = -1
# Due readers one tick takes at most: the tick's cost does not grow with the list.
TICK_READERS = 500
_SEQUENCE = (IssueStatus.ARCHIVED, IssueStatus.SENT)
_LIVE = (IssueStatus.SENDING,)
_OPEN = (D.QUEUED, D.SENDING)


def sendable(batch: int) -> tuple[IssueStatus, ...]:
    """Return the issue states in which a batch's copies may go out.

    A live batch needs its issue sending; an evergreen copy is of an archived or sent tip.
    """
    return _SEQUENCE if batch == EVERGREEN_BATCH else _LIVE


def tip_number(session: Session, issue_id: int) -> tuple[int, int] | None:
    """Return (this tip's number, how many tips) in the sequence; None if it is not in it."""
    tips = sequence(session)
    try:
        return tips.index(issue_id) + 1, len(tips)
    except ValueError:
        return None


@dataclass
class Step:
    queued: dict[int, int] = field(default_factory=dict)  # issue id -> copies handed out
    readers: int = 0  # due readers looked at
    done: int = 0  # readers who have every tip now


def step(
    session: Session,
    now: datetime,
    pace: int,
    limit: int = TICK_READERS,
    reader: int | None = None,
) -> Step:
    """Hand each due reader (at most ``limit``) their next tip; the caller commits.

    ``pace``: EVERGREEN_INTERVAL, for readers who chose none. ``reader``: only this one, if
    due (a reader who just confirmed or joined). The due time is the claim: the step moves
    it on in the transaction that writes the tip's row, and the reader's row is locked while
    it does (SKIP LOCKED on PostgreSQL, the one writer on SQLite), so a tick and a reader's
    own job at the same moment hand out one tip, not two.
    """
    report = Step()
    pick = (
        sa.select(
            Subscriber.id,
            Subscriber.status,
            Subscriber.paused_until,
            Subscriber.evergreen,
            Subscriber.evergreen_pace,
        )
        .where(Subscriber.evergreen_due_at <= now)
        .where(sa.true() if reader is None else Subscriber.id == reader)
        .order_by(Subscriber.evergreen_due_at)
        .limit(limit)
    )
    if session.get_bind().dialect.name == "postgresql":
        pick = pick.with_for_update(skip_locked=True)
    due = session.execute(pick).all()
    report.readers = len(due)
    if not due:
        return report
    tips = sequence(session)
    ids = [row.id for row in due]
    have: dict[int, dict[int, tuple[DeliveryStatus, int]]] = {}
    for sid, issue_id, status, batch in session.execute(
        sa.select(Delivery.subscriber_id, Delivery.issue_id, Delivery.status, Delivery.batch).where(
            Delivery.subscriber_id.in_(ids)
        )
    ):
        if sid is not None:
            have.setdefault(sid, {})[issue_id] = (status, batch)
    moves: list[dict[str, object]] = []
    new_rows: list[dict[str, object]] = []
    again: list[tuple[int, int]] = []
    for row in due:
        mine = have.get(row.id, {})
        every = timedelta(seconds=row.evergreen_pace or pace)
        move: dict[str, object] = {"id": row.id}
        moves.append(move)
        if not row.evergreen or row.status is not SubscriberStatus.CONFIRMED:
            move["evergreen_due_at"] = None  # out of the sequence or off the list: stopped
            continue
        if row.paused_until is not None and row.paused_until > now:
            move["evergreen_due_at"] = row.paused_until
            continue
        if any(b == EVERGREEN_BATCH and s in _OPEN for s, b in mine.values()):
            move["evergreen_due_at"] = now + every  # the last tip is still on its way
            continue
        index, tip = _next_tip(tips, mine)
        if tip is None:
            move["evergreen_due_at"] = None
            move["evergreen_position"] = len(tips)
            report.done += 1
            continue
        if tip in mine:
            again.append((tip, row.id))  # skipped while paused or away: give it out now
        else:
            new_rows.append({"issue_id": tip, "subscriber_id": row.id, "batch": EVERGREEN_BATCH})
        move["evergreen_position"] = index + 1
        move["evergreen_due_at"] = now + every
        report.queued[tip] = report.queued.get(tip, 0) + 1
    if new_rows:
        session.execute(sa.insert(Delivery), new_rows)
    if again:
        # One executemany for every skipped copy given back, not one statement per reader
        # (Core: ORM updates given a list of rows want primary keys, not these criteria).
        table = cast(sa.Table, Delivery.__table__)
        session.connection().execute(
            sa.update(table)
            .where(
                table.c.issue_id == sa.bindparam("tip"),
                table.c.subscriber_id == sa.bindparam("sid"),
                table.c.status == D.SKIPPED,
            )
            .values(
                status=D.QUEUED,
                batch=EVERGREEN_BATCH,
                attempts=0,
                next_attempt_at=None,
                last_error="",
            ),
            [{"tip": tip, "sid": sid} for tip, sid in again],
        )
    session.execute(sa.update(Subscriber), moves)
    return report


def _next_tip(
    tips: list[int], mine: dict[int, tuple[DeliveryStatus, int]]
) -> tuple[int, int | None]:
    """Return the first tip the reader has not had (a skipped copy they have not had)."""
    for index, tip in enumerate(tips):
        had = mine.get(tip)
        if had is None or had[0] is D.SKIPPED:
            return index, tip
    return len(tips), None


@dataclass
class Sweep:
    reclaimed: int = 0
    due: list[int] = field(default_factory=list)  # issues with evergreen copies to send


def _never(_owner: str) -> bool:
    return False


def reconcile(session: Session, now: datetime, dead: Callable[[str], bool] = _never) -> Sweep:
    """Take back the evergreen copies of dead workers and lapsed leases; list issues with work.

    The live sends' reconciler looks only at issues being sent; these copies are of
    archived and sent tips, so they are swept here (by the partial index on batch < 0).
    """
    sweep = Sweep()
    evergreen = Delivery.batch == EVERGREEN_BATCH
    claims = session.scalars(
        sa.select(Delivery.claimed_by).where(Delivery.status == D.SENDING, evergreen).distinct()
    ).all()
    gone = [c for c in claims if c and dead(claim_owner_of(c))]
    if gone:
        where = [evergreen, Delivery.claimed_by.in_(gone)]
        sweep.reclaimed += _take_back(session, where, OWNER_DIED, OWNER_DIED_UNSENT)
    expired = [evergreen, Delivery.lease_until < now]
    sweep.reclaimed += _take_back(session, expired, LEASE_EXPIRED, LEASE_EXPIRED_UNSENT)
    ready = sa.or_(Delivery.next_attempt_at.is_(None), Delivery.next_attempt_at <= now)
    sweep.due = list(
        session.scalars(
            sa.select(Delivery.issue_id)
            .where(Delivery.status == D.QUEUED, evergreen, ready)
            .distinct()
            .order_by(Delivery.issue_id)
        ).all()
    )
    return sweep


@dataclass(frozen=True)
class TipCount:
    number: int  # its place in the sequence, from 1
    issue_id: int
    subject: str
    sent: int  # copies the sequence sent
    waiting: int  # copies the sequence has queued or in flight


def sequence_counts(session: Session) -> tuple[list[TipCount], int]:
    """Return each tip of the sequence with its copies, and how many readers are in it."""
    counts: dict[tuple[int, bool], int] = {}
    for issue_id, status, n in session.execute(
        sa.select(Delivery.issue_id, Delivery.status, sa.func.count())
        .where(Delivery.batch == EVERGREEN_BATCH, Delivery.status.in_((D.SENT, *_OPEN)))
        .group_by(Delivery.issue_id, Delivery.status)
    ).all():
        key = (issue_id, status is D.SENT)
        counts[key] = counts.get(key, 0) + n
    subjects = dict(
        session.execute(sa.select(Issue.id, Issue.subject).where(Issue.status.in_(_SEQUENCE))).all()
    )
    tips = [
        TipCount(
            n,
            issue_id,
            subjects.get(issue_id, ""),
            counts.get((issue_id, True), 0),
            counts.get((issue_id, False), 0),
        )  # fmt: skip
        for n, issue_id in enumerate(sequence(session), 1)
    ]
    readers = session.scalar(
        sa.select(sa.func.count())
        .select_from(Subscriber)
        .where(Subscriber.evergreen, Subscriber.status == SubscriberStatus.CONFIRMED)
    )
    return tips, readers or 0
