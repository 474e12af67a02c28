"""Bulk unsubscribe and erase of a filtered list, run by a worker a chunk at a time.

Each chunk is one transaction: the chunk's people are changed by one set-based statement (with
their history lines, the day's counts and the webhook rows beside it), and the job's cursor
(the last id walked) moves in the same transaction, conditional on the run's attempt. A worker
killed mid-chunk leaves that chunk wholly undone and the cursor where it was: the next run
goes on from there, and nobody is changed twice. A run that finds the job still "running"
takes it over only once its heartbeat is older than the lease.
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, Session, mapped_column

from newsletter.errors import Conflict
from newsletter.models import (
    ConfirmLimit,
    EventKind,
    Model,
    Subscriber,
    SubscriberEvent,
    SubscriberStatus,
    UTCDateTime,
    WebhookDelivery,
    rowcount,
    utcnow,
)
from newsletter.subscribers.bulk import Filter, count_matching
from newsletter.subscribers.limits import confirm_quota
from newsletter.subscribers.state import LEFT_STAT, LISTENERS, bump_stat

S = SubscriberStatus
CHUNK = 500
ON_LIST = Subscriber.status.in_([S.PENDING, S.CONFIRMED])
# A running job whose heartbeat is older than a lease lost its worker: another run may take
# it. The app's callers pass SEND_LEASE_SECONDS; this is only the default of a direct call.
LEASE = timedelta(seconds=30)


class BulkAction(enum.StrEnum):
    UNSUBSCRIBE = "unsubscribe"
    ERASE = "erase"


class BulkState(enum.StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"


class BulkJob(Model):
    """An editor's bulk unsubscribe or erase over a filter: its cursor, progress and report."""

    __tablename__ = "bulk_job"

    id: Mapped[int] = mapped_column(primary_key=True)
    action: Mapped[str] = mapped_column(sa.String(20))
    q: Mapped[str] = mapped_column(sa.String(100), default="")
    status_filter: Mapped[str] = mapped_column(sa.String(20), default="")
    tag_id: Mapped[int | None] = mapped_column()
    tag_name: Mapped[str] = mapped_column(sa.String(50), default="")
    by: Mapped[str] = mapped_column(sa.String(200), default="")
    # How many matched when asked; an erase stops after that many, whoever joins meanwhile.
    total: Mapped[int] = mapped_column(default=0)
    state: Mapped[str] = mapped_column(sa.String(20), default=BulkState.QUEUED.value)
    last_id: Mapped[int] = mapped_column(default=0)  # the cursor: every id up to it is done
    seen: Mapped[int] = mapped_column(default=0)
    changed: Mapped[int] = mapped_column(default=0)
    attempt: Mapped[int] = mapped_column(default=0)
    error: Mapped[str] = mapped_column(sa.String(300), default="")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    heartbeat_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime())

    @property
    def filter(self) -> Filter:
        return Filter(self.q, self.status_filter, self.tag_id)

    @property
    def finished(self) -> bool:
        return self.state in (BulkState.DONE, BulkState.FAILED)

    def stale(self, now: datetime, lease: timedelta = LEASE) -> bool:
        """Say whether a run holds this job no longer (queued, or silent for a lease)."""
        if self.state == BulkState.QUEUED:
            return True
        beat = self.heartbeat_at
        return self.state == BulkState.RUNNING and (beat is None or beat < now - lease)


def start(
    session: Session,
    action: BulkAction,
    filt: Filter,
    *,
    by: str,
    tag_name: str = "",
    typed: str | None = None,
) -> BulkJob:
    """Record a bulk job over everyone the filter matches now; the caller commits and queues it.

    An unsubscribe counts those of them still on the list (pending or confirmed). An erase
    needs ``typed`` to be that number: else Conflict, and nothing is recorded.
    """
    if action is BulkAction.UNSUBSCRIBE:
        # Those on the list: the others have left already and are not walked.
        query = sa.select(sa.func.count()).select_from(Subscriber).where(*filt.where(), ON_LIST)
        count = session.scalar(query) or 0
    else:
        count = count_matching(session, filt)
    if action is BulkAction.ERASE and (typed or "").strip() != str(count):
        raise Conflict(
            f"Type the number of people to erase, {count}, to confirm; nobody was erased."
        )
    job = BulkJob(
        action=action.value,
        q=filt.q,
        status_filter=filt.status,
        tag_id=filt.tag_id,
        tag_name=tag_name,
        by=by[:200],
        total=count,
    )
    session.add(job)
    session.flush()
    return job


@dataclass
class _Run:
    job_id: int
    attempt: int
    action: BulkAction
    filt: Filter
    by: str
    total: int


def _claim(session: Session, job_id: int, now: datetime, lease: timedelta) -> _Run | None:
    free = sa.or_(
        BulkJob.state == BulkState.QUEUED,
        sa.and_(
            BulkJob.state == BulkState.RUNNING,
            sa.or_(BulkJob.heartbeat_at.is_(None), BulkJob.heartbeat_at < now - lease),
        ),
    )
    claimed = rowcount(
        session.execute(
            sa.update(BulkJob)
            .where(BulkJob.id == job_id, free)
            .values(state=BulkState.RUNNING, attempt=BulkJob.attempt + 1, heartbeat_at=now)
        )
    )
    session.commit()
    if claimed != 1:
        return None
    job = session.get(BulkJob, job_id)
    assert job is not None
    found = _Run(job.id, job.attempt, BulkAction(job.action), job.filter, job.by, job.total)
    session.commit()
    return found


class TakenOver(Exception):
    """Another run holds this job now."""


def run(
    session: Session, job_id: int, *, lease: timedelta = LEASE, chunk: int | None = None
) -> str:
    """Work through one bulk job a chunk at a time; return what it did (for the job's log).

    A job still marked running is taken over only once silent for ``lease``.
    """
    claim = _claim(session, job_id, utcnow(), lease)
    if claim is None:
        return "skipped: not waiting, or another run holds it"
    try:
        while _one_chunk(session, claim, chunk or CHUNK):
            pass
    except TakenOver:
        session.rollback()
        return "stopped: another run took the job over"
    return "done"


def _one_chunk(session: Session, claim: _Run, chunk: int) -> bool:
    """Do the next chunk in one transaction; return whether there may be more."""
    job = session.get(BulkJob, claim.job_id, populate_existing=True)
    if job is None or job.attempt != claim.attempt or job.state != BulkState.RUNNING:
        raise TakenOver
    after, seen = job.last_id, job.seen
    size = chunk
    extra: list[sa.ColumnElement[bool]] = []
    if claim.action is BulkAction.ERASE:
        size = min(chunk, claim.total - seen)
    else:
        extra.append(ON_LIST)
    rows = (
        session.execute(
            sa.select(Subscriber.id, Subscriber.email, Subscriber.name)
            .where(*claim.filt.where(), *extra, Subscriber.id > after)
            .order_by(Subscriber.id)
            .limit(max(size, 0))
        ).all()
        if size > 0
        else []
    )
    now = utcnow()
    changed = 0
    if rows:
        ids = [r.id for r in rows]
        if claim.action is BulkAction.ERASE:
            changed = _erase(session, rows)
        else:
            changed = _unsubscribe(session, ids, claim.by, now)
    more = bool(rows) and len(rows) == size
    values: dict[str, object] = {"heartbeat_at": now}
    if rows:
        values.update(
            last_id=rows[-1].id, seen=BulkJob.seen + len(rows), changed=BulkJob.changed + changed
        )
    if not more:
        values.update(state=BulkState.DONE, finished_at=now)
    moved = session.execute(
        sa.update(BulkJob)
        .where(
            BulkJob.id == claim.job_id,
            BulkJob.attempt == claim.attempt,
            BulkJob.state == BulkState.RUNNING,
            BulkJob.last_id == after,
        )
        .values(**values)
    )
    if rowcount(moved) != 1:
        raise TakenOver
    session.commit()
    return more


def _unsubscribe(session: Session, ids: Sequence[int], by: str, now: datetime) -> int:
    detail = f"by {by}"[:200]
    changed = session.execute(
        sa.update(Subscriber)
        .where(Subscriber.id.in_(ids), Subscriber.status.in_([S.PENDING, S.CONFIRMED]))
        .values(
            status=S.UNSUBSCRIBED,
            unsubscribed_at=now,
            updated_at=now,
            version=Subscriber.version + 1,
            confirm_due_at=None,
            confirm_name=None,
            paused_until=None,
        )
        .returning(Subscriber.id, Subscriber.email, Subscriber.name)
        .execution_options(synchronize_session=False)
    ).all()
    if not changed:
        return 0
    session.execute(
        sa.insert(SubscriberEvent),
        [
            {"subscriber_id": r.id, "kind": EventKind.UNSUBSCRIBED, "at": now, "detail": detail}
            for r in changed
        ],
    )
    bump_stat(session, EventKind.UNSUBSCRIBED.value, now.date(), len(changed))
    bump_stat(session, LEFT_STAT + "editor", now.date(), len(changed))
    if LISTENERS:
        with session.no_autoflush:
            for r in changed:
                # A stand-in, never added to the session: listeners read its id, address, name.
                person = Subscriber(id=r.id, email=r.email, name=r.name, status=S.UNSUBSCRIBED)
                for listener in LISTENERS:
                    listener(session, person, S.UNSUBSCRIBED, detail)
    return len(changed)


def _erase(session: Session, rows: Sequence[sa.Row[int, str, str]]) -> int:
    ids = [r.id for r in rows]
    if session.scalar(sa.select(WebhookDelivery.id).limit(1)) is not None:
        # Webhook payloads copy the address: they go too (as ``state.erase`` does for one).
        marks = []
        for r in rows:
            marks += [
                WebhookDelivery.payload.contains(f'"email": "{r.email}"'),
                WebhookDelivery.payload.contains(f'"subscriber_id": {r.id},'),
                WebhookDelivery.payload.contains(f'"subscriber_id": {r.id}}}'),
            ]
        session.execute(sa.delete(WebhookDelivery).where(sa.or_(*marks)))
    now = utcnow()
    keys = {confirm_quota(r.email, now).mailbox for r in rows}
    session.execute(sa.delete(ConfirmLimit).where(ConfirmLimit.key.in_(keys)))
    # History and tags go with the person (ON DELETE CASCADE); copies keep no address.
    gone = session.execute(
        sa.delete(Subscriber)
        .where(Subscriber.id.in_(ids))
        .execution_options(synchronize_session=False)
    )
    return rowcount(gone)


def latest(session: Session, limit: int = 3) -> list[BulkJob]:
    """Return the newest bulk jobs, newest first (the list page shows those not long done)."""
    return list(session.scalars(sa.select(BulkJob).order_by(BulkJob.id.desc()).limit(limit)))


def requeue(
    session: Session, job_id: int, *, lease: timedelta = LEASE, now: datetime | None = None
) -> bool:
    """Hand a job whose run went silent back to the queue; return whether it was stale."""
    now = now or utcnow()
    moved = session.execute(
        sa.update(BulkJob)
        .where(
            BulkJob.id == job_id,
            BulkJob.state == BulkState.RUNNING,
            sa.or_(BulkJob.heartbeat_at.is_(None), BulkJob.heartbeat_at < now - lease),
        )
        .values(state=BulkState.QUEUED)
    )
    return rowcount(moved) == 1
