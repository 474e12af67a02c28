"""What a batch does with each answer: record it, refuse, retry, pause, or wait for the relay.

``_BatchRun`` (``delivery.batch``) sends; these are its answers to what came back, kept apart
so each part reads on its own.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import NoReturn

import sqlalchemy as sa
from sqlalchemy.orm import Session

from newsletter.delivery.claims import Claimed, release
from newsletter.delivery.context import BatchContext, BatchReport
from newsletter.delivery.lifecycle import ANSWER_LOST, LEASE_EXPIRED, pause
from newsletter.delivery.outcomes import (
    BounceReport,
    FailureStreak,
    record_permanent,
    record_temporary,
)
from newsletter.delivery.reconnect import SteadyRecorder
from newsletter.delivery.relay import clear_unreachable, note_unreachable
from newsletter.mail.refusals import Stage, Verdict
from newsletter.mail.smtp import SMTPRefusal, SMTPRelayError, SMTPTemporaryError
from newsletter.models import BounceKind, Delivery, DeliveryStatus, utcnow

D = DeliveryStatus
log = logging.getLogger(__name__)

ABOUT_THE_READER = frozenset({Stage.RCPT, Stage.DATA, Stage.END})
PAUSED_THE_SEND = "paused the send:"
KINDS = {
    Verdict.HARD: BounceKind.HARD,
    Verdict.SOFT: BounceKind.SOFT,
    Verdict.BLOCKED: BounceKind.BLOCKED,
}


class Stop(Exception):
    """The chunk in hand ends here: the report says why (stopped, paused or halted)."""


class AcceptedUnrecorded(Exception):
    """The relay took a copy and the database could not be told for minutes: end the batch."""


class Again(Exception):
    """The chunk in hand ends here and the batch claims afresh (after a wait for the relay)."""


class RelayDown(Exception):
    """The relay cannot take mail now: the copy in hand is untouched, the send waits."""

    def __init__(self, error: SMTPTemporaryError) -> None:
        super().__init__(str(error))
        self.error = error


class Answers:
    """The answer half of a batch in progress (``delivery.batch._BatchRun`` is the rest)."""

    ctx: BatchContext
    session: Session
    recorder: SteadyRecorder
    issue_id: int
    streak: FailureStreak
    report: BatchReport
    accepted: tuple[str, Claimed] | None  # the copy whose record was sent ahead, unread
    relay_down: bool
    relay_back: bool  # a copy was accepted after an outage: clear it once that is recorded
    not_now: int
    check_relay: bool

    def _give_back(self, claim_id: str, rows: list[Claimed]) -> None:
        self._settle()
        self.report.released += release(self.session, claim_id, [r.delivery_id for r in rows])
        self.session.commit()

    def _record_sent(self, claim_id: str, row: Claimed) -> None:
        """Record an accepted copy, on a fresh connection if need be: it is never sent again.

        On PostgreSQL the record is sent ahead and ``_settle`` reads its answer: before the
        end of the next copy's data, and before anything else the batch does with the
        database, so an accepted copy is never given back as unsent.
        """
        self._settle()
        delivery_id, now = row.delivery_id, utcnow()
        if self.relay_down:  # the relay took a copy: the outage is over
            self.relay_down, self.relay_back = False, True
        if self.recorder.start_sent(delivery_id, claim_id, now):
            self.accepted = (claim_id, row)
            return
        call, record = self.recorder.call, lambda r: r.sent(delivery_id, claim_id, now)
        self._recorded(claim_id, row, lambda: call(record))

    def _settle(self) -> None:
        """Read the answer to the record sent ahead last, and act on it."""
        if self.accepted is None:
            return
        (claim_id, row), self.accepted = self.accepted, None
        self._recorded(claim_id, row, self.recorder.finish_sent)

    def _recorded(
        self, claim_id: str, row: Claimed, record: Callable[[], tuple[bool, bool]]
    ) -> None:
        try:
            recorded, retried = record()
        except self.recorder.errors as exc:
            # Accepted, and no database to say so: the row stays held (never given back as
            # unsent), and once its lease lapses the reconciler counts it as possibly sent.
            raise AcceptedUnrecorded(f"copy {row.delivery_id} accepted, not recorded") from exc
        if self.relay_back:
            self.relay_back = False
            clear_unreachable(self.session, self.issue_id)
            self.session.commit()
        if recorded:
            return
        now_is = self.session.execute(
            sa.select(Delivery.status, Delivery.claimed_by).where(Delivery.id == row.delivery_id)
        ).one_or_none()
        if retried and now_is is not None and tuple(now_is) == (D.SENT, claim_id):
            self.session.commit()
            return  # the attempt whose connection died had committed it
        # The lease ran out under us (the database was away longer than a lease): the rows
        # left in this chunk are no longer ours, and this copy may now go twice.
        self.session.execute(
            sa.update(Delivery)
            .where(Delivery.id == row.delivery_id)
            .values(last_error=LEASE_EXPIRED)
            .execution_options(synchronize_session=False)
        )
        self.session.commit()
        self.report.lost_leases += 1
        raise Again

    def _wait_for_relay(
        self, claim_id: str, rest: list[Claimed], exc: SMTPTemporaryError
    ) -> NoReturn:
        """The relay cannot take mail: give every copy back untouched and wait for it."""
        self._settle()
        session, settings, now = self.session, self.ctx.settings, utcnow()
        retry_at = note_unreachable(
            session, self.issue_id, now, str(exc), settings.relay_wait, settings.relay_wait_max
        )
        values: dict[str, object] = {}
        if exc.maybe_accepted:  # the line died before the server's answer: it may have it
            values["last_error"] = ANSWER_LOST
        if exc.stage in ABOUT_THE_READER and exc.verdict is not Verdict.WAIT:
            # Said at this reader's turn: after the wait, others go first, so one reader's
            # server cannot hold the whole send back.
            values["next_attempt_at"] = retry_at
        if values:
            session.execute(
                sa.update(Delivery)
                .where(Delivery.id == rest[0].delivery_id, Delivery.status == D.SENDING,
                       Delivery.claimed_by == claim_id)
                .values(**values)
                .execution_options(synchronize_session=False)
            )  # fmt: skip
        self._give_back(claim_id, rest)
        log.warning("issue %s: the relay cannot take mail (%s); next try at %s",
                    self.issue_id, exc, retry_at.isoformat())  # fmt: skip
        self.relay_down, self.not_now, self.check_relay = True, 0, True
        raise Again

    def _paused_for_before(self, row: Claimed, exc: SMTPRelayError) -> bool:
        """Return whether this copy, refused at its own RCPT or DATA, paused the send before.

        A refusal of us at a reader's own stage pauses the send once (the editor lifts the
        block, then resumes); the same copy refused again after the resume is failed, so
        one reader's server never stalls the newsletter.
        """
        self._settle()
        if exc.stage not in ABOUT_THE_READER:
            return False
        return last_error(self.session, row.delivery_id).startswith(PAUSED_THE_SEND)

    def _refused(
        self, claim_id: str, row: Claimed, exc: SMTPRefusal, kind: BounceKind | None = None
    ) -> None:
        """Record a copy refused for good, and what the refusal says about the reader."""
        self._settle()
        session = self.session
        kind = kind or KINDS[exc.verdict]
        error = (
            str(exc) if kind is not BounceKind.BLOCKED else f"refused again after a pause: {exc}"
        )
        record_permanent(session, row, claim_id, utcnow(), error)
        self.ctx.bounce(session, self._report(row, kind, exc, error))
        session.commit()
        self.report.failed += 1

    def _deferred(self, claim_id: str, row: Claimed, exc: SMTPTemporaryError) -> None:
        """Record a copy refused for now: retried later, or failed after the last attempt."""
        self._settle()
        session, settings = self.session, self.ctx.settings
        outcome = record_temporary(
            session,
            row,
            claim_id,
            utcnow(),
            str(exc),
            max_attempts=settings.max_attempts,
            retry_base=settings.retry_base,
        )
        # Only an answer about this reader's mailbox counts against them: a relay or
        # network that stayed down through every retry is nobody's bounce.
        if outcome is D.FAILED and exc.stage in ABOUT_THE_READER and exc.verdict is Verdict.RETRY:
            detail = f"still refused after {settings.max_attempts} attempts: {exc}"
            self.ctx.bounce(session, self._report(row, BounceKind.SOFT, exc, detail))
        session.commit()
        self.report.failed += outcome is D.FAILED
        self.report.retried += outcome is D.QUEUED

    def _report(
        self, row: Claimed, kind: BounceKind, exc: SMTPRefusal, detail: str
    ) -> BounceReport:
        return BounceReport(
            subscriber_id=row.subscriber_id,
            kind=kind,
            diagnostic=f"{exc.stage}: {detail}",
            issue_id=self.issue_id,
            delivery_id=row.delivery_id,
            status_code=exc.enhanced,
        )

    def _pause_for_relay(self, claim_id: str, rest: list[Claimed], exc: SMTPRelayError) -> NoReturn:
        """The relay refused us: pause at once; this copy and the rest go back untouched."""
        self._settle()
        reason = f"paused: the mail relay refused us at {exc.stage}: {exc}"
        pause(self.session, self.issue_id, reason, automatic=True)
        if exc.stage in ABOUT_THE_READER:  # remembered: a second time fails this copy
            self.session.execute(
                sa.update(Delivery)
                .where(Delivery.id == rest[0].delivery_id)
                .values(last_error=f"{PAUSED_THE_SEND} {exc}"[:300])
                .execution_options(synchronize_session=False)
            )
        self._give_back(claim_id, rest)
        self.streak.clear(self.issue_id)
        self.report.paused = True
        raise Stop

    def _pause_for_streak(
        self, claim_id: str, row: Claimed, rest: list[Claimed], count: int
    ) -> None:
        """Pause the issue after too many failures in a row; give back the rest of the chunk."""
        self._settle()
        reason = (
            f"paused automatically: the last {count} messages all failed "
            f"(last answer: {last_error(self.session, row.delivery_id)})"
        )
        pause(self.session, self.issue_id, reason, automatic=True)
        self._give_back(claim_id, rest)
        self.streak.clear(self.issue_id)
        self.report.paused = True
        raise Stop


def last_error(session: Session, delivery_id: int) -> str:
    return session.scalar(sa.select(Delivery.last_error).where(Delivery.id == delivery_id)) or ""


def sleep_unless_stopped(seconds: float, should_stop: Callable[[], bool]) -> None:
    end = time.monotonic() + seconds
    while not should_stop() and (left := end - time.monotonic()) > 0:
        time.sleep(min(left, 0.1))
