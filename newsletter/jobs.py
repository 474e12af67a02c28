"""The only functions RQ calls: ids in, reload, re-check, one unit of work.

Each runs inside the app context that worker.py (or a test) provides, and can be called
directly from a test.
"""

from __future__ import annotations

import logging
from typing import Any

from flask import current_app

from .extensions import db
from .mail import SMTPSender
from .models import Subscriber, SubscriberStatus
from .services import mailer, tokens

log = logging.getLogger(__name__)


def send_confirmation(subscriber_id: int) -> str:
    """Mail the confirmation link to a subscriber who is still pending."""
    sub = db.session.get(Subscriber, subscriber_id)
    if sub is None or sub.status is not SubscriberStatus.PENDING:
        return "skipped: not pending"
    config = current_app.config
    token = tokens().confirm_token(sub.id, sub.version)
    msg = mailer().build(
        "confirm", {"confirm_url": f"{config['BASE_URL']}/confirm/{token}"}, sub.email
    )
    with SMTPSender(config) as smtp:
        smtp.send(sub.email, mailer().to_bytes(msg))
    log.info("confirmation mailed to subscriber %s", sub.id)
    return "sent"


def send_welcome(subscriber_id: int) -> str:
    """Mail the welcome note, with safe-sender advice, to a subscriber who just confirmed."""
    sub = db.session.get(Subscriber, subscriber_id)
    if sub is None or sub.status is not SubscriberStatus.CONFIRMED:
        return "skipped: not confirmed"
    config = current_app.config
    unsubscribe_url = f"{config['BASE_URL']}/unsubscribe/{tokens().unsubscribe_token(sub.id)}"
    msg = mailer().build(
        "welcome",
        {"unsubscribe_url": unsubscribe_url, "name": sub.name},
        sub.email,
        headers={
            "List-Unsubscribe": f"<{unsubscribe_url}>",
            "List-Unsubscribe-Post": "List-Unsubscribe=One-Click",
        },
    )
    with SMTPSender(config) as smtp:
        smtp.send(sub.email, mailer().to_bytes(msg))
    log.info("welcome mailed to subscriber %s", sub.id)
    return "sent"


# --- issue delivery (the engine itself lives in sending.py) -------------------------------------

NOBODY_SCHEDULED = "not sent at its scheduled time: there were no confirmed subscribers"

# An issue is rendered once per process, not once per batch: it cannot change while it sends.
_messages: dict[tuple[int, int, Any], Any] = {}


def _send_settings(config: Any) -> Any:
    from .sending import SendSettings

    return SendSettings(
        lease_seconds=float(config["SEND_LEASE_SECONDS"]),
        max_attempts=int(config["SEND_MAX_ATTEMPTS"]),
        retry_base=float(config["SEND_RETRY_BASE"]),
        pause_after=int(config["SEND_PAUSE_AFTER"]),
        short_wait=min(2.0, float(config["RECONCILE_INTERVAL"])),
    )


def deliver_batch(issue_id: int, batch: int) -> str:
    """Send one batch of an issue over one SMTP connection; safe to run twice or concurrently."""
    from . import get_redis
    from .issues import ALIVE_KEY
    from .models import Issue, IssueStatus
    from .ratelimit_send import SendRateLimiter, SharedStreak
    from .sending import issue_message, run_batch
    from .workers import stop_requested, worker_name

    issue = db.session.get(Issue, issue_id)
    if issue is None or issue.status is not IssueStatus.SENDING:
        return f"skipped: issue {issue_id} is {'gone' if issue is None else issue.status.value}"
    app = current_app._get_current_object()  # type: ignore[attr-defined]
    config = app.config
    settings = _send_settings(config)
    redis = get_redis(app)
    alive = ALIVE_KEY.format(issue=issue_id, batch=batch)
    limiter = SendRateLimiter(redis, float(config["SEND_RATE"]))
    tok = tokens(app)
    secret = config["SECRET_KEY"].encode()

    def heartbeat() -> None:
        redis.set(alive, worker_name(), ex=max(int(settings.lease_seconds), 1))

    def message() -> Any:
        key = (id(app), issue_id, issue.updated_at)
        built = _messages.get(key)
        if built is None:
            _messages.clear()
            built = _messages[key] = issue_message(mailer(app), issue, secret)
        return built

    try:
        with SMTPSender(config) as smtp:
            report = run_batch(
                db.session,
                issue_id,
                batch,
                worker=worker_name(),
                message=message,
                token_for=tok.unsubscribe_token_maker(),
                smtp=smtp,
                settings=settings,
                streak=SharedStreak(redis),
                should_stop=stop_requested,
                # SEND_RATE=0: no bucket, and no call per message either.
                throttle=(lambda: limiter.wait(stop_requested)) if limiter.rate > 0 else None,
                heartbeat=heartbeat,
            )
    finally:
        redis.delete(alive)
    log.info("issue %s batch %s: %s", issue_id, batch, report)
    return (
        f"sent {report.sent}, failed {report.failed}, retrying {report.retried}"
        f"{', stopped' if report.stopped else ''}{', paused' if report.paused else ''}"
        f"{', issue finished' if report.finished else ''}"
    )


def reconcile() -> str:
    """Take back expired leases, close finished sends, re-enqueue batches whose jobs were lost."""
    from .issues import dispatch
    from .models import utcnow
    from .sending import reconcile as reconcile_sends
    from .webhooks import reconcile as reconcile_webhooks

    found = reconcile_sends(db.session, utcnow())
    db.session.commit()
    reconcile_webhooks()  # pending webhook deliveries whose job Redis lost get a new one
    per_issue: dict[int, list[int]] = {}
    for issue_id, batch in found.due:
        per_issue.setdefault(issue_id, []).append(batch)
    enqueued = sum(dispatch(issue_id, batches) for issue_id, batches in per_issue.items())
    if found.reclaimed or enqueued or found.finished:
        log.info(
            "reconciler: %s leases taken back, %s batch jobs enqueued, finished issues %s",
            found.reclaimed,
            enqueued,
            found.finished,
        )
    return f"reclaimed {found.reclaimed}, enqueued {enqueued}, finished {found.finished}"


def scheduler_tick() -> str:
    """Start scheduled issues that are due and the weekly slot's ready issue, then reconcile."""
    import sqlalchemy as sa
    from sqlalchemy.exc import IntegrityError

    from .issues import dispatch
    from .models import Issue, IssueStatus, utcnow
    from .schedule import due_slot
    from .sending import queue_issue

    config = current_app.config
    now = utcnow()
    started: list[tuple[int, int]] = []
    due_ids = db.session.scalars(
        sa.select(Issue.id)
        .where(Issue.status == IssueStatus.SCHEDULED, Issue.scheduled_at <= now)
        .order_by(Issue.scheduled_at, Issue.id)
    ).all()
    db.session.commit()
    for issue_id in due_ids:
        result = queue_issue(db.session, issue_id, now, config["BATCH_SIZE"])
        if result.started and not result.audience:
            # Like `issues send`: nobody confirmed means no send. Back to draft, with the
            # reason shown, so the editor sees it and the tick does not retry it forever.
            db.session.rollback()
            db.session.execute(
                sa.update(Issue)
                .where(Issue.id == issue_id, Issue.status == IssueStatus.SCHEDULED)
                .values(
                    status=IssueStatus.DRAFT,
                    scheduled_at=None,
                    pause_reason=NOBODY_SCHEDULED,
                    updated_at=now,
                )
                .execution_options(synchronize_session=False)
            )
            db.session.commit()
            log.warning("scheduled issue %s not sent: no confirmed subscribers", issue_id)
            continue
        db.session.commit()
        if result.started:
            started.append((issue_id, result.batches))
    slot = config.get("WEEKLY_SLOT")
    slot_at = due_slot(now, slot, int(config["SLOT_GRACE"])) if slot else None
    if slot_at is not None and not db.session.scalar(
        sa.select(sa.func.count()).where(Issue.slot_at == slot_at)
    ):
        # Oldest issue that was ready when the slot came; a later one waits for the next slot.
        ready = db.session.scalar(
            sa.select(Issue.id)
            .where(Issue.status == IssueStatus.READY, Issue.updated_at <= slot_at)
            .order_by(Issue.updated_at, Issue.id)
            .limit(1)
        )
        if ready is not None:
            try:
                took = db.session.execute(
                    sa.update(Issue)
                    .where(Issue.id == ready, Issue.status == IssueStatus.READY)
                    .values(slot_at=slot_at)
                    .execution_options(synchronize_session=False)
                ).rowcount
                result = queue_issue(db.session, ready, now, config["BATCH_SIZE"])
                if took and result.started and not result.audience:
                    # Nobody to send to: the issue stays ready (for this slot while its grace
                    # lasts, then the next one), as `issues send` would leave it.
                    db.session.rollback()
                    log.warning("weekly slot: issue %s not sent: no confirmed subscribers", ready)
                elif took and result.started:
                    db.session.commit()
                    started.append((ready, result.batches))
                else:
                    db.session.rollback()
            except IntegrityError:  # another worker's tick took this slot first
                db.session.rollback()
        else:
            db.session.commit()
    for issue_id, batches in started:
        dispatch(issue_id, range(batches))
    if started:
        log.info("scheduler started issues %s", [i for i, _ in started])
    return f"started {[i for i, _ in started]}; " + reconcile()
