"""Send one batch of an issue: claim a chunk, send each message, commit each outcome.

A worker killed mid-batch leaves rows in ``sending`` with a lease; the reconciler takes them
back. The only copy that can be sent twice is the one in flight on a connection when its
worker died.
"""

from __future__ import annotations

import logging
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import cast

import sqlalchemy as sa
from sqlalchemy.orm import Session

from newsletter.delivery.answers import (
    Again,
    Answers,
    RelayDown,
    Stop,
    sleep_unless_stopped,
)
from newsletter.delivery.claims import Claimed, claim, skip_claimed
from newsletter.delivery.context import (
    RECHECK_SECONDS,
    BatchContext,
    BatchReport,
    SendSettings,
)
from newsletter.delivery.evergreen import sendable
from newsletter.delivery.lease import LeaseKeeper
from newsletter.delivery.lifecycle import finish_if_done, next_retry_at, skip_if_cancelled
from newsletter.delivery.message import IssueMessage
from newsletter.delivery.outcomes import FailureStreak, LocalStreak
from newsletter.delivery.reconnect import SteadyRecorder, backoff, db_errors
from newsletter.delivery.relay import relay_state
from newsletter.mail.refusals import Verdict
from newsletter.mail.smtp import SMTPPermanentError, SMTPRelayError, SMTPTemporaryError
from newsletter.models import BounceKind, Delivery, DeliveryStatus, Issue, IssueStatus, utcnow

__all__ = ["RECHECK_SECONDS", "BatchContext", "BatchReport", "SendSettings", "run_batch"]

D = DeliveryStatus
log = logging.getLogger(__name__)

# A database connection lost this many times in a row ends the batch (the reconciler hands
# it out again); fewer are waited out on a fresh connection.
DB_FAILURES_AT_MOST = 20


def run_batch(session: Session, issue_id: int, batch: int, ctx: BatchContext) -> BatchReport:
    """Send one batch of an issue: claim a chunk, send each message, commit each outcome."""
    session.commit()  # the Recorder writes on its own connection: hold no transaction here
    recorder = SteadyRecorder(session, flush_wait=ctx.settings.record_flush_wait)
    base = f"{ctx.worker}:{secrets.token_hex(4)}"
    engine = cast(sa.Engine, session.get_bind())
    lease_seconds = ctx.settings.lease_seconds
    keeper = LeaseKeeper(engine, issue_id, batch, base, lease_seconds, ctx.heartbeat)
    try:
        run = _BatchRun(
            ctx=ctx,
            session=session,
            recorder=recorder,
            issue_id=issue_id,
            batch=batch,
            base=base,
            streak=ctx.streak if ctx.streak is not None else LocalStreak(),
        )
        with keeper:
            return run.run()
    finally:
        recorder.close()


# Sends one claimed copy and records the answer; returns the issue's failure streak.
_SendOne = Callable[[str, Claimed], int]


@dataclass
class _BatchRun(Answers):
    """One batch in progress: its context, its claims, and what it has done so far."""

    ctx: BatchContext
    session: Session
    recorder: SteadyRecorder
    issue_id: int
    batch: int
    base: str
    streak: FailureStreak
    report: BatchReport = field(default_factory=BatchReport)
    accepted: tuple[str, Claimed] | None = None
    relay_down: bool = False  # the relay was found unreachable: the next acceptance clears it
    relay_back: bool = False
    not_now: int = 0  # "not now" answers about readers in a row
    check_relay: bool = True  # read the issue's relay state before the next claim
    send_one: _SendOne | None = None

    def run(self) -> BatchReport:
        should_stop, errors = self.ctx.should_stop, db_errors(self.session)
        chunk_no = failures = 0
        while not should_stop():
            chunk_no += 1
            claim_id = f"{self.base}:{chunk_no}"[:64]
            try:
                if self.check_relay and not self._relay_gate():
                    return self.report
                if not self._chunk(claim_id):
                    break
                failures = 0
            except Stop:
                return self.report
            except Again:
                continue
            except errors as exc:
                failures += 1
                if failures > DB_FAILURES_AT_MOST:
                    raise
                log.warning("issue %s batch %s: database error (%s); going on", self.issue_id,
                            self.batch, exc)  # fmt: skip
                self._recover(claim_id, failures)
        else:
            self.report.stopped = True
        self.report.finished = finish_if_done(self.session, self.issue_id, utcnow())
        self.session.commit()
        return self.report

    def _chunk(self, claim_id: str) -> bool:
        """Claim a chunk and send it; False when the batch has nothing more to do."""
        ctx, settings = self.ctx, self.ctx.settings
        rows = claim(
            self.session, self.issue_id, self.batch, claim_id, utcnow(),
            settings.lease_seconds, settings.claim_chunk,
        )  # fmt: skip
        self.session.commit()
        if not rows:
            return self._wait_for_work()
        if self.send_one is None:
            built = ctx.message()
            self.session.commit()  # building may have loaded the issue: end that transaction
            self.send_one = self._sender(built)
        self._send_chunk(claim_id, rows, self.send_one)
        return True

    def _recover(self, claim_id: str, failures: int) -> None:
        """After a lost database connection: give back what this chunk still holds, unsent.

        No copy whose send was accepted is among them: those are recorded before anything
        else (``SteadyRecorder`` retries that write on a fresh connection).
        """
        self._settle()
        for attempt in range(DB_FAILURES_AT_MOST):
            sleep_unless_stopped(backoff(failures + attempt), self.ctx.should_stop)
            try:
                self.session.rollback()
                self.session.execute(
                    sa.update(Delivery)
                    .where(
                        Delivery.issue_id == self.issue_id,
                        Delivery.batch == self.batch,
                        Delivery.status == D.SENDING,
                        Delivery.claimed_by == claim_id,
                    )
                    .values(status=D.QUEUED, claimed_by=None, lease_until=None)
                    .execution_options(synchronize_session=False)
                )
                self.session.commit()
                return
            except db_errors(self.session):
                log.warning("could not give back %s yet", claim_id, exc_info=True)
        # Still no database: the leases lapse and the reconciler takes the rows back.

    def _relay_gate(self) -> bool:
        """Before claiming: wait for a relay known to be down; False to end the batch."""
        self.check_relay = False
        state = relay_state(self.session, self.issue_id)
        self.session.commit()
        if state.down_since is None:
            return True
        self.relay_down = True
        wait = state.wait(utcnow())
        if wait > self.ctx.settings.short_wait:
            self.report.waiting = True  # the reconciler hands the batch out when it is due
            return False
        sleep_unless_stopped(wait, self.ctx.should_stop)
        return True

    def _wait_for_work(self) -> bool:
        """Nothing was claimable: wait briefly when work is due soon; False to end the batch."""
        session = self.session
        if _queued_and_due(session, self.issue_id, self.batch):
            # Rows are there but were not claimable this instant (another transaction
            # held them, or a subscriber changed under the claim): look again shortly
            # rather than leave them to the reconciler.
            session.commit()
            sleep_unless_stopped(0.05, self.ctx.should_stop)
            return True
        wait_until = next_retry_at(session, self.issue_id, self.batch)
        status = session.scalar(sa.select(Issue.status).where(Issue.id == self.issue_id))
        session.commit()
        if wait_until is None or status is not IssueStatus.SENDING:
            return False
        wait = (wait_until - utcnow()).total_seconds()
        if wait > self.ctx.settings.short_wait:
            return False  # the reconciler re-dispatches the batch when the retry is due
        sleep_unless_stopped(max(wait, 0.01), self.ctx.should_stop)
        return True

    def _send_chunk(self, claim_id: str, rows: list[Claimed], send_one: _SendOne) -> None:
        ctx, monotonic = self.ctx, time.monotonic
        should_stop, throttle = ctx.should_stop, ctx.throttle
        recheck_seconds, pause_after = ctx.settings.recheck_seconds, ctx.settings.pause_after
        checked_at = monotonic()
        gone: set[int] = set()
        for index, row in enumerate(rows):
            if should_stop():
                self.report.stopped = True
                self._give_back(claim_id, rows[index:])
                raise Stop
            now_m = monotonic()
            if throttle is not None:
                try:
                    throttle()
                except InterruptedError:
                    self.report.stopped = True
                    self._give_back(claim_id, rows[index:])
                    raise Stop from None
                now_m = monotonic()
            if now_m - checked_at >= recheck_seconds:
                gone |= self._recheck(claim_id, rows[index:])
                checked_at = monotonic()
            if row.delivery_id in gone:
                continue
            try:
                streak = send_one(claim_id, row)
            except SMTPRelayError as exc:
                self._pause_for_relay(claim_id, rows[index:], exc)
            except RelayDown as down:
                self._wait_for_relay(claim_id, rows[index:], down.error)
            if streak >= pause_after:
                self._pause_for_streak(claim_id, row, rows[index + 1 :], streak)
        self._settle()

    def _recheck(self, claim_id: str, rest: list[Claimed]) -> set[int]:
        """Re-read what may have changed since the claim; return who left meanwhile.

        A paused or cancelled issue ends the batch here: the unsent rest goes back.
        """
        self._settle()  # the record sent ahead is read before the recorder is used again
        status, _retried = self.recorder.call(lambda r: r.issue_status(self.issue_id))
        if status not in sendable(self.batch):
            self._halt(claim_id, rest)
        return self._skip_departed(claim_id)

    def _halt(self, claim_id: str, rest: list[Claimed]) -> None:
        """The issue left ``sending``: give back the rest; a cancel skips it at once."""
        self._give_back(claim_id, rest)
        # After the give-back's commit: a cancel whose own skip ran before it is still seen.
        self.report.skipped += skip_if_cancelled(self.session, self.issue_id)
        self.session.commit()
        self.report.halted = True
        raise Stop

    def _skip_departed(self, claim_id: str) -> set[int]:
        """Skip the claimed copies of whoever unsubscribed since the claim; return them."""
        left, _retried = self.recorder.call(
            lambda r: r.no_longer_confirmed(self.issue_id, self.batch, claim_id)
        )
        if left:
            self.report.skipped += skip_claimed(self.session, claim_id, left)
            self.session.commit()
        return left

    def _sender(self, built: IssueMessage) -> _SendOne:
        """Return the send of one copy, with everything it calls bound once for the batch."""
        ctx, report, issue_id = self.ctx, self.report, self.issue_id
        bytes_for, token_for, manage_token_for = (
            built.bytes_for,
            ctx.token_for,
            ctx.manage_token_for,
        )
        send, envelope, settle = ctx.smtp.send, ctx.envelope, self._settle
        succeeded, failed = self.streak.succeeded, self.streak.failed
        suspect_after = ctx.settings.relay_suspect_after

        def send_one(claim_id: str, row: Claimed) -> int:
            sid = row.subscriber_id
            data = bytes_for(
                sid,
                row.email,
                token_for(sid),
                manage_token=manage_token_for(sid, row.created_at, row.email),
                name=row.name,
            )
            try:
                # The record of the copy before is collected once this one's envelope is
                # taken, before its data ends: so it travels while this copy is on the wire.
                send(row.email, data, envelope(row.delivery_id) if envelope else None, settle)
            except SMTPRelayError as exc:
                if not self._paused_for_before(row, exc):
                    raise  # about us, not this reader: the caller pauses the send
                self._refused(claim_id, row, exc, BounceKind.BLOCKED)
                return failed(issue_id)
            except SMTPPermanentError as exc:
                self._refused(claim_id, row, exc)
                return failed(issue_id)  # only refusals of readers count toward a pause
            except SMTPTemporaryError as exc:
                # Not now: about the relay, or about so many readers in a row that the relay
                # must be why. The send waits for it; no reader's copy counts a try.
                if exc.verdict is Verdict.WAIT or self.relay_down or self.not_now >= suspect_after:
                    raise RelayDown(exc) from None
                self.not_now += 1
                self._deferred(claim_id, row, exc)
                return 0
            self._record_sent(claim_id, row)
            report.sent += 1
            self.not_now = 0
            succeeded(issue_id)
            return 0

        return send_one


def _queued_and_due(session: Session, issue_id: int, batch: int) -> bool:
    due = sa.or_(Delivery.next_attempt_at.is_(None), Delivery.next_attempt_at <= utcnow())
    sending = sa.exists().where(Issue.id == issue_id, Issue.status == IssueStatus.SENDING)
    return bool(
        session.scalar(
            sa.select(
                sa.exists().where(
                    Delivery.issue_id == issue_id,
                    Delivery.batch == batch,
                    Delivery.status == D.QUEUED,
                    due,
                    sending,
                )
            )
        )
    )
