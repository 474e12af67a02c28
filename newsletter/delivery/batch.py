"""Send one batch of an issue: claim a chunk, send each message, commit each outcome.

A worker killed mid-batch leaves rows in ``sending`` with a lease; the reconciler takes them
back. The only copy that can be sent twice is the one in flight on a connection when its
worker died.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import NoReturn, Protocol, cast

import sqlalchemy as sa
from sqlalchemy.orm import Session

from newsletter.delivery.claims import (
    CLAIM_CHUNK,
    Claimed,
    Recorder,
    claim,
    release,
    skip_claimed,
)
from newsletter.delivery.lease import LeaseKeeper
from newsletter.delivery.lifecycle import (
    finish_if_done,
    next_retry_at,
    pause,
    skip_if_cancelled,
)
from newsletter.delivery.message import IssueMessage
from newsletter.delivery.outcomes import (
    BounceReport,
    FailureStreak,
    LocalStreak,
    record_permanent,
    record_temporary,
)
from newsletter.mail.refusals import Stage, Verdict
from newsletter.mail.smtp import (
    SMTPPermanentError,
    SMTPRefusal,
    SMTPRelayError,
    SMTPTemporaryError,
)
from newsletter.models import BounceKind, Delivery, DeliveryStatus, Issue, IssueStatus, utcnow

D = DeliveryStatus

RECHECK_SECONDS = 0.05


class Sender(Protocol):
    def send(self, to: str, data: bytes, sender: str | None = None) -> None: ...


@dataclass
class SendSettings:
    lease_seconds: float = 300.0
    max_attempts: int = 6
    retry_base: float = 60.0
    pause_after: int = 50
    # Wait inside the job for a retry due this soon; a later one is left to the reconciler.
    short_wait: float = 2.0
    claim_chunk: int = CLAIM_CHUNK
    # How stale the claimed rows' subscriber status and the issue's status may get before they
    # are read again: whoever unsubscribes more than this before their turn is skipped, and a
    # pause or cancel stops the chunk in hand, however big the chunk.
    recheck_seconds: float = RECHECK_SECONDS


@dataclass
class BatchReport:
    sent: int = 0
    failed: int = 0
    retried: int = 0
    released: int = 0
    skipped: int = 0
    stopped: bool = False
    paused: bool = False
    halted: bool = False  # the issue was paused or cancelled while the batch ran
    finished: bool = False
    lost_leases: int = 0


# Records what a refusal says about the reader (``bounces.record`` applies it).
Bounce = Callable[[Session, BounceReport], object]
_ABOUT_THE_READER = frozenset({Stage.RCPT, Stage.DATA, Stage.END})
PAUSED_THE_SEND = "paused the send:"
_KINDS = {
    Verdict.HARD: BounceKind.HARD,
    Verdict.SOFT: BounceKind.SOFT,
    Verdict.BLOCKED: BounceKind.BLOCKED,
}


def _never() -> bool:
    return False


def _nothing() -> None:
    pass


@dataclass(frozen=True)
class BatchContext:
    """What a batch works with, from the worker that runs it: one per batch.

    ``worker`` names the process on each claim (the reconciler frees a dead one's claims);
    ``message`` builds the issue's message (once per batch, on its first claimed chunk);
    ``token_for`` and ``manage_token_for`` sign a reader's unsubscribe and manage links;
    ``bounce`` records what a refusal says about a reader; ``streak`` counts failures in a
    row (per process unless shared); ``should_stop`` says the worker is asked to stop;
    ``throttle`` waits for the send rate's next token (None: no rate); ``heartbeat`` is
    called with each lease renewal, from the renewing thread; ``envelope`` gives a copy's
    envelope sender from its delivery id (VERP), None for MAIL_FROM's.
    """

    worker: str
    message: Callable[[], IssueMessage]
    token_for: Callable[[int], str]
    manage_token_for: Callable[[int, datetime, str], str]
    smtp: Sender
    settings: SendSettings
    bounce: Bounce
    streak: FailureStreak | None = None
    should_stop: Callable[[], bool] = _never
    throttle: Callable[[], None] | None = None
    heartbeat: Callable[[], None] = _nothing
    envelope: Callable[[int], str] | None = None


def run_batch(session: Session, issue_id: int, batch: int, ctx: BatchContext) -> BatchReport:
    """Send one batch of an issue: claim a chunk, send each message, commit each outcome."""
    session.commit()  # the Recorder writes on its own connection: hold no transaction here
    recorder = Recorder(session)
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


class _Stop(Exception):
    """The chunk in hand ends here: the report says why (stopped, paused or halted)."""


# Sends one claimed copy and records the answer; returns the issue's failure streak.
_SendOne = Callable[[str, Claimed], int]


@dataclass
class _BatchRun:
    """One batch in progress: its context, its claims, and what it has done so far."""

    ctx: BatchContext
    session: Session
    recorder: Recorder
    issue_id: int
    batch: int
    base: str
    streak: FailureStreak
    report: BatchReport = field(default_factory=BatchReport)

    def run(self) -> BatchReport:
        ctx = self.ctx
        should_stop, settings = ctx.should_stop, ctx.settings
        send_one: _SendOne | None = None
        chunk_no = 0
        while not should_stop():
            chunk_no += 1
            claim_id = f"{self.base}:{chunk_no}"[:64]
            rows = claim(
                self.session, self.issue_id, self.batch, claim_id, utcnow(),
                settings.lease_seconds, settings.claim_chunk,
            )  # fmt: skip
            self.session.commit()
            if not rows:
                if self._wait_for_work():
                    continue
                break
            if send_one is None:
                built = ctx.message()
                self.session.commit()  # building may have loaded the issue: end that transaction
                send_one = self._sender(built)
            try:
                self._send_chunk(claim_id, rows, send_one)
            except _Stop:
                return self.report
        else:
            self.report.stopped = True
        self.report.finished = finish_if_done(self.session, self.issue_id, utcnow())
        self.session.commit()
        return self.report

    def _wait_for_work(self) -> bool:
        """Nothing was claimable: wait briefly when work is due soon; False to end the batch."""
        session = self.session
        if _queued_and_due(session, self.issue_id, self.batch):
            # Rows are there but were not claimable this instant (another transaction
            # held them, or a subscriber changed under the claim): look again shortly
            # rather than leave them to the reconciler.
            session.commit()
            _sleep(0.05, self.ctx.should_stop)
            return True
        wait_until = next_retry_at(session, self.issue_id, self.batch)
        status = session.scalar(sa.select(Issue.status).where(Issue.id == self.issue_id))
        session.commit()
        if wait_until is None or status is not IssueStatus.SENDING:
            return False
        wait = (wait_until - utcnow()).total_seconds()
        if wait > self.ctx.settings.short_wait:
            return False  # the reconciler re-dispatches the batch when the retry is due
        _sleep(max(wait, 0.01), self.ctx.should_stop)
        return True

    def _give_back(self, claim_id: str, rows: list[Claimed]) -> None:
        self.report.released += release(self.session, claim_id, [r.delivery_id for r in rows])
        self.session.commit()

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
                raise _Stop
            now_m = monotonic()
            if throttle is not None:
                try:
                    throttle()
                except InterruptedError:
                    self.report.stopped = True
                    self._give_back(claim_id, rows[index:])
                    raise _Stop from None
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
            if streak >= pause_after:
                self._pause_for_streak(claim_id, row, rows[index + 1 :], streak)

    def _recheck(self, claim_id: str, rest: list[Claimed]) -> set[int]:
        """Re-read what may have changed since the claim; return who left meanwhile.

        A paused or cancelled issue ends the batch here: the unsent rest goes back.
        """
        if self.recorder.issue_status(self.issue_id) is not IssueStatus.SENDING:
            self._halt(claim_id, rest)
        return self._skip_departed(claim_id)

    def _halt(self, claim_id: str, rest: list[Claimed]) -> None:
        """The issue left ``sending``: give back the rest; a cancel skips it at once."""
        self._give_back(claim_id, rest)
        # After the give-back's commit: a cancel whose own skip ran before it is still seen.
        self.report.skipped += skip_if_cancelled(self.session, self.issue_id)
        self.session.commit()
        self.report.halted = True
        raise _Stop

    def _skip_departed(self, claim_id: str) -> set[int]:
        """Skip the claimed copies of whoever unsubscribed since the claim; return them."""
        left = self.recorder.no_longer_confirmed(self.issue_id, self.batch, claim_id)
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
        send, envelope, sent = ctx.smtp.send, ctx.envelope, self.recorder.sent
        succeeded, failed = self.streak.succeeded, self.streak.failed

        def send_one(claim_id: str, row: Claimed) -> int:
            sid = row.subscriber_id
            data = bytes_for(
                sid,
                row.email,
                token_for(sid),
                manage_token=manage_token_for(sid, row.created_at, row.email),
            )
            try:
                send(row.email, data, envelope(row.delivery_id) if envelope else None)
            except SMTPRelayError as exc:
                if not self._paused_for_before(row, exc):
                    raise  # about us, not this reader: the caller pauses the send
                self._refused(claim_id, row, exc, BounceKind.BLOCKED)
                return failed(issue_id)
            except SMTPPermanentError as exc:
                self._refused(claim_id, row, exc)
                return failed(issue_id)
            except SMTPTemporaryError as exc:
                self._deferred(claim_id, row, exc)
                return failed(issue_id)
            if not sent(row.delivery_id, claim_id, utcnow()):
                report.lost_leases += 1
            report.sent += 1
            succeeded(issue_id)
            return 0

        return send_one

    def _paused_for_before(self, row: Claimed, exc: SMTPRelayError) -> bool:
        """Return whether this copy, refused at its own RCPT or DATA, paused the send before.

        A refusal of us at a reader's own stage pauses the send once (the editor lifts the
        block, then resumes); the same copy refused again after the resume is failed, so
        one reader's server never stalls the newsletter.
        """
        if exc.stage not in _ABOUT_THE_READER:
            return False
        return _last_error(self.session, row.delivery_id).startswith(PAUSED_THE_SEND)

    def _refused(
        self, claim_id: str, row: Claimed, exc: SMTPRefusal, kind: BounceKind | None = None
    ) -> None:
        """Record a copy refused for good, and what the refusal says about the reader."""
        session = self.session
        kind = kind or _KINDS[exc.verdict]
        error = (
            str(exc) if kind is not BounceKind.BLOCKED else f"refused again after a pause: {exc}"
        )
        record_permanent(session, row, claim_id, utcnow(), error)
        self.ctx.bounce(session, self._report(row, kind, exc, error))
        session.commit()
        self.report.failed += 1

    def _deferred(self, claim_id: str, row: Claimed, exc: SMTPTemporaryError) -> None:
        """Record a copy refused for now: retried later, or failed after the last attempt."""
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
        if outcome is D.FAILED and exc.stage in _ABOUT_THE_READER and exc.verdict is Verdict.RETRY:
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
        reason = f"paused: the mail relay refused us at {exc.stage}: {exc}"
        pause(self.session, self.issue_id, reason)
        if exc.stage in _ABOUT_THE_READER:  # remembered: a second time fails this copy
            self.session.execute(
                sa.update(Delivery)
                .where(Delivery.id == rest[0].delivery_id)
                .values(last_error=f"{PAUSED_THE_SEND} {exc}"[:300])
                .execution_options(synchronize_session=False)
            )
        self._give_back(claim_id, rest)
        self.streak.clear(self.issue_id)
        self.report.paused = True
        raise _Stop

    def _pause_for_streak(
        self, claim_id: str, row: Claimed, rest: list[Claimed], count: int
    ) -> None:
        """Pause the issue after too many failures in a row; give back the rest of the chunk."""
        reason = (
            f"paused automatically: the last {count} messages all failed "
            f"(last answer: {_last_error(self.session, row.delivery_id)})"
        )
        pause(self.session, self.issue_id, reason)
        self._give_back(claim_id, rest)
        self.streak.clear(self.issue_id)
        self.report.paused = True
        raise _Stop


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


def _last_error(session: Session, delivery_id: int) -> str:
    return session.scalar(sa.select(Delivery.last_error).where(Delivery.id == delivery_id)) or ""


def _sleep(seconds: float, should_stop: Callable[[], bool]) -> None:
    end = time.monotonic() + seconds
    while not should_stop() and (left := end - time.monotonic()) > 0:
        time.sleep(min(left, 0.1))
