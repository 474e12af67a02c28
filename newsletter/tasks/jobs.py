"""Issue delivery's job, and the names of every function RQ calls.

RQ calls functions in four modules, each declared with ``tasks.queues.job`` (queue, time
limit, job name) right above it: ``deliver_batch`` here (one batch of an issue);
``send_confirmation``, ``send_welcome`` and ``run_import`` in ``tasks.mail``;
``send_address_confirmation`` and ``send_address_notice`` in ``tasks.manage``; ``deliver``
(one webhook post) in ``tasks.webhooks``. Each takes ids, reloads and re-checks, and does one
unit of work, inside the app context that ``tasks.worker`` (or a test) provides; each can be
called directly from a test.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable
from typing import Any

from redis.exceptions import RedisError
from sqlalchemy.orm import Session

from newsletter.bounces.record import record_bounce
from newsletter.config import Settings
from newsletter.delivery.batch import BatchContext, SendSettings, run_batch
from newsletter.delivery.evergreen import EVERGREEN_BATCH, sendable, tip_number
from newsletter.delivery.message import IssueMessage, issue_message
from newsletter.delivery.outcomes import BounceReport
from newsletter.extensions import db, get_redis, this_app
from newsletter.extensions import settings as app_settings
from newsletter.i18n import N_, translations
from newsletter.mail.smtp import SMTPSender
from newsletter.mail.verp import verp_address
from newsletter.models import Issue
from newsletter.services import mailer, tokens

# The mail and import jobs live in tasks.mail; their old names here keep jobs queued under
# them (and their importers) working: RQ imports a job's function by the name it was queued
# under.
from newsletter.tasks.mail import run_import, send_confirmation, send_welcome
from newsletter.tasks.process import claim_owner, stop_requested
from newsletter.tasks.queues import ALIVE_KEY, SEND_QUEUE, job
from newsletter.tasks.throttle import SendRateLimiter, SharedStreak

log = logging.getLogger(__name__)

__all__ = ["bounce_address", "deliver_batch", "run_import", "send_confirmation", "send_welcome"]


# --- issue delivery (the engine itself lives in newsletter.delivery) ---------------------------

# An issue is rendered once per process, not once per batch: it cannot change while it sends.
_messages: dict[tuple[int, int, Any, str], IssueMessage] = {}


def _send_settings(found: Settings) -> SendSettings:
    return SendSettings(
        lease_seconds=found.send_lease_seconds,
        max_attempts=found.send_max_attempts,
        retry_base=found.send_retry_base,
        pause_after=found.send_pause_after,
        short_wait=min(2.0, found.reconcile_interval),
        relay_wait=found.send_relay_wait,
        relay_wait_max=found.send_relay_wait_max,
        record_flush_wait=found.send_record_flush_wait,
    )


# Six hours: the longest one batch may hold a worker, at the slowest SEND_RATE.
@job(queue=SEND_QUEUE, timeout=6 * 3600, name=lambda issue, batch: f"send-{issue}-{batch}")
def deliver_batch(issue_id: int, batch: int) -> str:
    """Send one batch of an issue over one SMTP connection; safe to run twice or concurrently."""
    issue = db.session.get(Issue, issue_id)
    if issue is None or issue.status not in sendable(batch):
        return f"skipped: issue {issue_id} is {'gone' if issue is None else issue.status.value}"
    app = this_app()
    found = app_settings(app)
    settings = _send_settings(found)
    redis = get_redis(app)
    alive = ALIVE_KEY.format(issue=issue_id, batch=batch)
    limiter = SendRateLimiter(redis, found.send_rate)
    tok = tokens(app)
    secret = found.secret_key.encode()

    owner = claim_owner()

    def heartbeat() -> None:
        # Renewed with the leases (every sixth of one): it lapses soon after a worker dies.
        redis.set(alive, owner, px=max(int(settings.lease_seconds * 500), 200))

    def message() -> IssueMessage:
        tip = tip_line(db.session(), issue_id, found.language) if batch == EVERGREEN_BATCH else ""
        key = (id(app), issue_id, issue.updated_at, tip)
        built = _messages.get(key)
        if built is None:
            _messages.clear()
            built = _messages[key] = issue_message(mailer(app), issue, secret, tip=tip)
        return built

    try:
        with SMTPSender(found) as smtp:
            context = BatchContext(
                worker=owner,
                message=message,
                token_for=tok.unsubscribe_token_maker(),
                manage_token_for=tok.manage_token_maker(),
                smtp=smtp,
                settings=settings,
                bounce=bounce_address,
                streak=SharedStreak(redis),
                should_stop=stop_requested,
                # SEND_RATE=0: no bucket, and no call per message either.
                throttle=(lambda: _take_token(limiter)) if limiter.rate > 0 else None,
                heartbeat=heartbeat,
                envelope=_verp(found.bounce_address, secret),
            )
            report = run_batch(db.session(), issue_id, batch, context)
    finally:
        try:
            redis.delete(alive)
        except RedisError:
            pass  # Redis is away: the key lapses by itself within half a lease
    log.info("issue %s batch %s: %s", issue_id, batch, report)
    return (
        f"sent {report.sent}, failed {report.failed}, retrying {report.retried}"
        f"{', stopped' if report.stopped else ''}{', paused' if report.paused else ''}"
        f"{', halted (paused or cancelled)' if report.halted else ''}"
        f"{', waiting for the mail relay' if report.waiting else ''}"
        f"{', issue finished' if report.finished else ''}"
    )


TIP_LINE = N_("Tip %(number)s of %(total)s")


def tip_line(session: Session, issue_id: int, language: str) -> str:
    """Return an evergreen copy's "Tip 12 of 476" line ("" if the tip left the sequence)."""
    found = tip_number(session, issue_id)
    session.commit()
    if found is None:
        return ""
    number, total = found
    return translations(language).gettext(TIP_LINE) % {"number": number, "total": total}


def _verp(bounce_address: str | None, secret: bytes) -> Callable[[int], str] | None:
    """With BOUNCE_ADDRESS, give each copy its own signed envelope sender (VERP)."""
    if not bounce_address:
        return None
    return functools.partial(verp_address, bounce_address, secret=secret)


def _take_token(limiter: SendRateLimiter) -> None:
    """Wait for SEND_RATE's token; without Redis, end the batch (the rate cannot be kept).

    The batch gives its claimed rows back and the job ends; the worker reconnects with backoff
    and the reconciler hands the batch out again once Redis answers.
    """
    try:
        limiter.wait(stop_requested)
    except RedisError as exc:
        log.warning("SEND_RATE cannot be kept without Redis (%s): giving the batch back", exc)
        raise InterruptedError("Redis unavailable") from None


def bounce_address(session: Session, report: BounceReport) -> None:
    """Record what a refusal said about a reader, and bounce them if it calls for that."""
    record_bounce(session, report, app_settings().bounce_soft_limit)
