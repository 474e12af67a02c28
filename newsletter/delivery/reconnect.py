"""Carry a batch through a database connection that dies under it: reconnect, never resend.

A killed connection (a database restart, a failover, ``pg_terminate_backend``) must not end a
batch: the copy the relay just accepted would stay ``sending`` until its lease ran out and
then go out again. Every write of the batch is retried on a fresh connection instead; the
SMTP send is never repeated for it.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from datetime import datetime
from typing import TypeVar, cast

import sqlalchemy as sa
from sqlalchemy.orm import Session

from newsletter.delivery.claims import Recorder

log = logging.getLogger(__name__)

T = TypeVar("T")

# How long one write is tried again before the batch gives up (the reconciler then takes
# its rows back, marking the one in flight as possibly sent).
GIVE_UP_AFTER = 120.0


def db_errors(session: Session) -> tuple[type[BaseException], ...]:
    """Return the errors of a lost or busy connection: SQLAlchemy's, and the driver's raw ones."""
    dbapi = cast(sa.Engine, session.get_bind()).dialect.loaded_dbapi
    return (
        sa.exc.OperationalError,
        sa.exc.InterfaceError,
        dbapi.OperationalError,
        dbapi.InterfaceError,
    )


def backoff(attempt: int, first: float = 0.05, most: float = 2.0) -> float:
    """Return the pause before retry number ``attempt`` (from 0) of a database write."""
    return float(min(first * 2**attempt, most))


class SteadyRecorder:
    """The batch's ``Recorder``, opened again on a fresh connection whenever its own dies."""

    def __init__(
        self, session: Session, give_up_after: float = GIVE_UP_AFTER, *, flush_wait: bool = True
    ) -> None:
        self.session = session
        self.errors = db_errors(session)
        self.give_up_after = give_up_after
        self.flush_wait = flush_wait
        self._rec: Recorder | None = Recorder(session, flush_wait=flush_wait)
        self.retried = 0  # how many calls needed a second connection
        self._ahead: tuple[int, str, datetime] | None = None  # a record sent, its answer unread

    def call(self, use: Callable[[Recorder], T]) -> tuple[T, bool]:
        """Run ``use`` on the recorder until it succeeds; return its result and whether it retried.

        A retried write may have been committed by the attempt whose connection died: the
        caller reads a "nothing changed" answer after a retry accordingly.
        """
        if self._ahead is not None:
            raise RuntimeError("a record sent ahead must be finished first")
        deadline = time.monotonic() + self.give_up_after
        attempt = 0
        while True:
            try:
                if self._rec is None:
                    self._rec = Recorder(self.session, flush_wait=self.flush_wait)
                return use(self._rec), attempt > 0
            except self.errors as exc:
                if time.monotonic() > deadline:
                    raise
                log.warning("database connection lost while recording (%s); reconnecting", exc)
                self._drop()
            attempt += 1
            self.retried += attempt == 1
            time.sleep(backoff(attempt - 1))

    def start_sent(self, delivery_id: int, claim_id: str, now: datetime) -> bool:
        """Send an acceptance's record without waiting for it (PostgreSQL).

        Return False where the database cannot (SQLite): the caller records it with ``call``.
        Otherwise ``finish_sent`` must collect it before anything else uses the recorder.
        """
        self._ahead = (delivery_id, claim_id, now)
        try:
            if self._rec is None:
                self._rec = Recorder(self.session, flush_wait=self.flush_wait)
            if self._rec.start_sent(delivery_id, claim_id, now):
                return True
        except self.errors as exc:
            log.warning("database connection lost while recording (%s); reconnecting", exc)
            self._drop()
            return True  # finish_sent records it on a fresh connection
        self._ahead = None
        return False

    def finish_sent(self) -> tuple[bool, bool]:
        """Collect the record ``start_sent`` sent: whether it was recorded, and whether retried.

        A lost connection leaves unknown whether the record was committed: it is made again
        on a fresh connection, and the answer is read as a retried one (see ``call``).
        """
        if self._ahead is None:
            raise RuntimeError("no record was sent ahead")
        delivery_id, claim_id, now = self._ahead
        if self._rec is not None:
            try:
                recorded = self._rec.finish_sent()
                self._ahead = None
                return recorded, False
            except self.errors as exc:
                log.warning("database connection lost while recording (%s); reconnecting", exc)
                self._drop()
        self._ahead = None
        self.retried += 1
        recorded, _retried = self.call(lambda r: r.sent(delivery_id, claim_id, now))
        return recorded, True

    def _drop(self) -> None:
        rec, self._rec = self._rec, None
        if rec is None:
            return
        try:
            rec.close()  # the pool finds the connection dead on its reset and discards it
        except Exception:
            log.debug("closing a dead recorder connection failed", exc_info=True)

    def close(self) -> None:
        """Give the connection back to the pool."""
        self._drop()
