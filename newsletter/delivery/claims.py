"""Claim deliveries with a conditional UPDATE and a lease; give them back; record acceptances.

Two workers never hold the same row: every claim re-checks what it depends on in the UPDATE
itself. The ``Recorder`` commits each acceptance as one autocommit statement.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, cast

import sqlalchemy as sa
from sqlalchemy.engine.interfaces import DBAPICursor
from sqlalchemy.orm import Session
from sqlalchemy.pool import PoolProxiedConnection

from newsletter.delivery.ahead import RecordAhead
from newsletter.delivery.audience import (
    in_audience,
    paused_note,
    receiving,
    still_in_audience,
    this_reader,
)
from newsletter.delivery.evergreen import sendable
from newsletter.models import (
    Delivery,
    DeliveryStatus,
    Issue,
    IssueStatus,
    Subscriber,
    rowcount,
    utcnow,
)
from newsletter.prepared import prepared
from newsletter.sqlite_setup import retry_busy

D = DeliveryStatus

# Rows claimed at a time: big enough that claiming costs little per message; unsubscribes are
# still seen quickly because the claimed rows are re-checked every RECHECK_SECONDS.
CLAIM_CHUNK = 200


@dataclass(frozen=True)
class Claimed:
    delivery_id: int
    subscriber_id: int
    email: str
    attempts: int
    created_at: datetime  # when the reader's row was made: their manage link names it
    name: str = ""  # fills the issue's merge fields


def skip_unsubscribed(
    session: Session, issue_id: int, batch: int | None = None, now: datetime | None = None
) -> int:
    """Skip queued deliveries whose subscriber left, was erased or paused; say why on each."""
    conn = session.connection()
    stmt = _statements(conn.dialect.name, batch).skip
    params = {"c_issue": issue_id, "c_now": now or utcnow()}
    if batch is not None:
        params["c_batch"] = batch
    return rowcount(conn.execute(stmt, params))


def claim(
    session: Session,
    issue_id: int,
    batch: int,
    claim_id: str,
    now: datetime,
    lease_seconds: float,
    limit: int = CLAIM_CHUNK,
) -> list[Claimed]:
    """Lease up to ``limit`` due deliveries of a batch to ``claim_id``; return them.

    The UPDATE re-checks everything it depends on (issue still sending, delivery still queued
    and due, subscriber still confirmed and not paused), so two workers never hold the same row.
    """
    skip_unsubscribed(session, issue_id, batch, now)
    conn = session.connection()
    params = {"c_issue": issue_id, "c_batch": batch, "c_claim": claim_id, "c_now": now}
    params |= {"c_lease": now + timedelta(seconds=lease_seconds), "c_limit": limit}
    taken = conn.execute(_statements(conn.dialect.name, batch).claim, params).all()
    # A reader erased meanwhile has no address: left out, as the join of old left them out.
    return [
        Claimed(row[0], row[1], row[2], row[3], row[4], row[5] or "")
        for row in sorted(taken)
        if row[2] is not None
    ]


@dataclass(frozen=True)
class _ClaimStatements:
    skip: sa.Update
    claim: sa.Update


def _statements(dialect: str, batch: int | None) -> _ClaimStatements:
    return _build(dialect, None if batch is None else sendable(batch))


# Built once per database and kind of batch, with parameters for the values: building these
# UPDATEs anew for each chunk cost the worker ~40 µs of CPU per copy sent (bench/RESULTS.md).
@functools.cache
def _build(dialect: str, states: tuple[IssueStatus, ...] | None) -> _ClaimStatements:
    """Build the skip and the claim of a batch whose issue may be in ``states``.

    ``states`` None: only the skip is used, over the whole issue.
    """
    deliveries = _DELIVERY.c
    now: sa.BindParameter[datetime] = sa.bindparam("c_now", type_=deliveries.sent_at.type)
    issue = deliveries.issue_id == sa.bindparam("c_issue")
    in_batch = deliveries.batch == sa.bindparam("c_batch")
    where = [issue, deliveries.status == D.QUEUED, ~receiving(now)]
    # Still in the audience yet not receiving: paused. The reason names the day the pause ends.
    paused = this_reader(sa.case((in_audience(), paused_note(dialect)), else_=sa.null()))
    skip = (
        sa.update(_DELIVERY)
        .where(*where, *([] if states is None else [in_batch]))
        .values(
            status=D.SKIPPED,
            last_error=sa.func.coalesce(paused, sa.literal("not subscribed at send time")),
        )
    )
    due = sa.or_(deliveries.next_attempt_at.is_(None), deliveries.next_attempt_at <= now)
    candidates = (
        sa.select(deliveries.id)
        .where(issue, in_batch, deliveries.status == D.QUEUED, due, receiving(now))
        .order_by(deliveries.id)
        .limit(sa.bindparam("c_limit", type_=sa.Integer()))
    )
    picked: sa.ColumnElement[bool]
    if dialect == "postgresql":
        # id = ANY(ARRAY(...)): the picked ids are computed once, then each is one primary-key
        # lookup; "id IN (...)" left the join's shape to the planner's estimates.
        candidates = candidates.with_for_update(skip_locked=True)
        picked = deliveries.id == sa.any_(sa.func.array(candidates.scalar_subquery()))
    else:
        picked = deliveries.id.in_(candidates.scalar_subquery())
    # Read by primary key, so no plan can prefer another index of the issue table.
    sending = (
        sa.select(_ISSUE.c.status)
        .where(_ISSUE.c.id == sa.bindparam("c_issue"))
        .scalar_subquery()
        .in_([s.value for s in states or ()])
    )
    take = (
        sa.update(_DELIVERY)
        .where(picked, deliveries.status == D.QUEUED, sending)
        .values(
            status=D.SENDING,
            claimed_by=sa.bindparam("c_claim", type_=deliveries.claimed_by.type),
            lease_until=sa.bindparam("c_lease", type_=deliveries.lease_until.type),
        )
        # The reader's address and row date, each by primary key from the claimed row itself.
        .returning(
            deliveries.id,
            deliveries.subscriber_id,
            this_reader(Subscriber.email),
            deliveries.attempts,
            this_reader(Subscriber.created_at),
            this_reader(Subscriber.name),
        )
    )
    return _ClaimStatements(skip, take)


def held(delivery_id: int, claim_id: str) -> tuple[Any, ...]:
    return (
        Delivery.id == delivery_id,
        Delivery.status == D.SENDING,
        Delivery.claimed_by == claim_id,
    )


# Declarative classes type __table__ as any FromClause; these are Tables, as update() needs.
_DELIVERY = cast(sa.Table, Delivery.__table__)
# Built once: this runs once per message, and building an ORM UPDATE each time cost more CPU
# than handing the message to the SMTP server (see bench/RESULTS.md).
_RECORD_SENT = (
    sa.update(_DELIVERY)
    .where(
        _DELIVERY.c.id == sa.bindparam("delivery_id"),
        _DELIVERY.c.status == D.SENDING,
        _DELIVERY.c.claimed_by == sa.bindparam("claim_id"),
    )
    .values(
        status=D.SENT,
        sent_at=sa.bindparam("now", type_=_DELIVERY.c.sent_at.type),
        lease_until=None,
        attempts=_DELIVERY.c.attempts + 1,
    )
)


def _settle_held(
    session: Session, claim_id: str, delivery_ids: Iterable[int], **values: Any
) -> int:
    """Move deliveries still held by ``claim_id`` out of ``sending``; return how many moved."""
    ids = list(delivery_ids)
    if not ids:
        return 0
    return rowcount(
        session.execute(
            sa.update(Delivery)
            .where(
                Delivery.id.in_(ids), Delivery.status == D.SENDING, Delivery.claimed_by == claim_id
            )
            .values(lease_until=None, **values)
            .execution_options(synchronize_session=False)
        )
    )


def release(session: Session, claim_id: str, delivery_ids: Iterable[int]) -> int:
    """Give claimed deliveries back untouched (a graceful stop, a pause)."""
    return _settle_held(session, claim_id, delivery_ids, status=D.QUEUED, claimed_by=None)


# issue_id, status and batch lead to ix_delivery_issue_status_batch: without them this ran
# every 50 ms as a scan of the whole delivery table.
_NO_LONGER_CONFIRMED = sa.select(_DELIVERY.c.id).where(
    _DELIVERY.c.issue_id == sa.bindparam("issue_id"),
    _DELIVERY.c.batch == sa.bindparam("batch"),
    _DELIVERY.c.claimed_by == sa.bindparam("claim_id"),
    _DELIVERY.c.status == D.SENDING,
    # Only leaving the audience is checked here; a reader's own pause is seen at the next claim.
    ~still_in_audience(),
)


_ISSUE = cast(sa.Table, Issue.__table__)
# Read at the unsubscribe re-check's cadence: a pause or cancel stops the chunk in hand.
_ISSUE_STATUS = sa.select(_ISSUE.c.status).where(_ISSUE.c.id == sa.bindparam("issue_id"))


class Recorder:
    """Record acceptances on one DBAPI connection held for the whole batch, in autocommit.

    Each accepted message is still its own committed transaction (that is what bounds a
    crash's duplicates to the message in flight), but a single UPDATE in autocommit mode is
    that transaction: one statement, one round trip, no BEGIN or COMMIT around it, and no
    Session around it either (that cost ~150 µs of Python per message, as much as smtplib).
    On SQLite a lone UPDATE takes the write lock at its start and waits out the busy timeout
    like BEGIN IMMEDIATE; the caller keeps the Session free of open transactions meanwhile,
    so this connection never waits on its own process.
    """

    def __init__(self, session: Session, *, flush_wait: bool = True) -> None:
        # The recorder takes a connection of its own, so the session must be bound to an Engine.
        engine = cast(sa.Engine, session.get_bind())
        dialect = engine.dialect
        sample = {"delivery_id": 0, "claim_id": "", "now": utcnow()}
        self._sent = prepared(_RECORD_SENT, dialect, **sample)
        self._gone = prepared(_NO_LONGER_CONFIRMED, dialect, issue_id=0, batch=0, claim_id="")
        self._status = prepared(_ISSUE_STATUS, dialect, issue_id=0)
        self._closing: PoolProxiedConnection | sa.Connection
        self._busy_timeout = 0  # ms; SQLite only: the connection's own, put back at close
        if dialect.name == "sqlite":
            # The app's SQLite connections run with the driver's own transactions off
            # (isolation_level=None): every statement outside BEGIN is autocommitted.
            conn = self._closing = engine.raw_connection()
        else:
            # The pool puts the isolation level back when this connection returns.
            autocommit = engine.connect().execution_options(isolation_level="AUTOCOMMIT")
            self._closing = autocommit
            conn = autocommit.connection
        self._cur: DBAPICursor = conn.cursor()
        if dialect.name == "sqlite":
            # SQLite's own busy wait sleeps 1 ms, then 2, then 5, whenever the write lock is
            # taken, though another worker's record holds it for ~40 µs: with two workers one
            # record in twelve slept a millisecond or more (bench/RESULTS.md). A record is
            # autocommitted, outside any BEGIN: this connection waits in short steps of its
            # own instead (``sqlite_setup.retry_busy``), as long as the app's.
            self._cur.execute("PRAGMA busy_timeout")
            self._busy_timeout = int(self._cur.fetchall()[0][0])
            self._cur.execute("PRAGMA busy_timeout = 0")
        # PostgreSQL: the record can travel while the next copy goes (``delivery.ahead``).
        self.ahead: RecordAhead | None = None
        if dialect.driver == "psycopg":
            dbapi_conn = conn.dbapi_connection
            self.ahead = RecordAhead(cast(Any, dbapi_conn), self._sent.sql, self._sent.base)
        # Without the flush wait, a record's commit returns once it is in the server's WAL
        # buffers: still atomic and kept through a worker's death or a killed backend; only a
        # crash of the database server can lose the last few hundred milliseconds of it.
        self._async = not flush_wait and dialect.name == "postgresql"
        if self._async:
            self._cur.execute("SET synchronous_commit = off")

    def _execute(self, sql: str, params: Any) -> None:
        if not self._busy_timeout:
            self._cur.execute(sql, params)
            return
        retry_busy(lambda: self._cur.execute(sql, params), self._busy_timeout / 1000)

    def sent(self, delivery_id: int, claim_id: str, now: datetime) -> bool:
        """Commit one acceptance; False if the lease was lost meanwhile."""
        params = self._sent.params(delivery_id=delivery_id, claim_id=claim_id, now=now)
        self._execute(self._sent.sql, params)
        return self._cur.rowcount == 1

    def start_sent(self, delivery_id: int, claim_id: str, now: datetime) -> bool:
        """Send one acceptance's record without waiting; False where only ``sent`` can."""
        if self.ahead is None:
            return False
        now_value = self._sent.procs["now"](now) if "now" in self._sent.procs else now
        self.ahead.start(delivery_id=delivery_id, claim_id=claim_id, now=now_value)
        return True

    def finish_sent(self) -> bool:
        """Wait for the record ``start_sent`` sent; False if the lease was lost meanwhile."""
        assert self.ahead is not None
        return self.ahead.finish() == 1

    def no_longer_confirmed(self, issue_id: int, batch: int, claim_id: str) -> set[int]:
        """Return the deliveries held by ``claim_id`` whose subscriber left meanwhile."""
        params = self._gone.params(issue_id=issue_id, batch=batch, claim_id=claim_id)
        self._execute(self._gone.sql, params)
        return {row[0] for row in self._cur.fetchall()}

    def issue_status(self, issue_id: int) -> IssueStatus | None:
        """Return the issue's status as committed now (None if it is gone)."""
        self._execute(self._status.sql, self._status.params(issue_id=issue_id))
        rows = self._cur.fetchall()  # fetch to the end: on SQLite an open read holds a lock
        return IssueStatus(rows[0][0]) if rows else None

    def close(self) -> None:
        """Give the connection back to the pool."""
        try:
            if self.ahead is not None:
                self.ahead.close()
            if self._async:  # the pooled connection goes back as every other one is
                self._cur.execute("RESET synchronous_commit")
            if self._busy_timeout:
                self._cur.execute(f"PRAGMA busy_timeout = {self._busy_timeout}")
            self._cur.close()
        finally:
            self._closing.close()


def skip_claimed(session: Session, claim_id: str, delivery_ids: Iterable[int]) -> int:
    """Skip claimed deliveries whose subscriber is no longer confirmed."""
    return _settle_held(
        session, claim_id, delivery_ids, status=D.SKIPPED, last_error="not subscribed at send time"
    )
