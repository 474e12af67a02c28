"""Webhook jobs: post each delivery after the commit that made it, retry with backoff, and
give a delivery whose job Redis lost a new one (the reconciler)."""

from __future__ import annotations

import logging
from datetime import timedelta

import sqlalchemy as sa
from flask import Flask
from rq.job import Job
from rq.serializers import JSONSerializer
from sqlalchemy.orm import Session

from newsletter.extensions import db, get_redis, settings
from newsletter.models import WebhookDelivery, WebhookDeliveryStatus, utcnow
from newsletter.tasks.queues import WEBHOOK_QUEUE, enqueue, job, name_job
from newsletter.webhooks import events
from newsletter.webhooks.post import attempt, backoff

log = logging.getLogger(__name__)


# One name per try, so a lost one can be told; RQ's default time limit (a post's own deadline,
# webhooks/post.py, is far shorter).
@job(
    queue=WEBHOOK_QUEUE,
    timeout=180,
    name=lambda delivery_id, attempts: f"webhook-{delivery_id}-{attempts}",
)
def deliver(delivery_id: int) -> str:
    """POST one webhook delivery; on failure schedule a retry with exponential backoff."""
    allow = settings().webhook_allow_hosts
    tried = attempt(db.session(), delivery_id, allow)
    if tried.retry is not None:
        _schedule_retry(delivery_id, tried.retry)
    return tried.outcome


def _after_commit(session: Session) -> None:
    for delivery_id in events.take_pending(session):
        try:
            enqueue(deliver, delivery_id, job_id=name_job(deliver, delivery_id, 0))
        except Exception:  # the row stays pending; retry_pending picks it up
            log.exception("could not enqueue webhook delivery %s", delivery_id)


_installed = False


def install(app: Flask) -> None:
    """Emit events, enqueue them after each commit, and reconcile them at worker start."""
    hooks = app.extensions.setdefault("worker_start_hooks", [])
    if reconcile not in hooks:
        hooks.append(reconcile)
    global _installed
    if _installed:
        return
    events.listen()
    sa.event.listen(Session, "after_commit", _after_commit)
    sa.event.listen(Session, "after_soft_rollback", lambda s, _t: events.forget_pending(s))
    _installed = True


def _schedule_retry(delivery_id: int, attempts: int) -> None:
    base = settings().webhook_retry_base
    name = name_job(deliver, delivery_id, attempts)
    enqueue(deliver, delivery_id, job_id=name, delay=backoff(attempts, base))


# Jobs in these states will still run (or are running): nothing is lost.
_ALIVE = {"queued", "started", "deferred", "scheduled"}


def retry_pending(
    session: Session, older_than: timedelta = timedelta(minutes=1), limit: int = 1000
) -> int:
    """Re-enqueue pending deliveries whose next job is gone (Redis flushed); return how many.

    Rows younger than ``older_than`` are left alone: their job may be enqueued just after the
    commit that made them. A lost retry goes out at once rather than after its backoff.
    """
    cutoff = utcnow() - older_than
    rows = session.execute(
        sa.select(WebhookDelivery.id, WebhookDelivery.attempts)
        .where(
            WebhookDelivery.status == WebhookDeliveryStatus.PENDING,
            WebhookDelivery.created_at < cutoff,
        )
        .order_by(WebhookDelivery.id)
        .limit(limit)
    ).all()
    session.commit()  # end the read: SQLite holds its write lock for the whole transaction
    if not rows:
        return 0
    redis = get_redis()
    names = [name_job(deliver, i, attempts) for i, attempts in rows]
    statuses = Job.fetch_many(names, connection=redis, serializer=JSONSerializer)
    lost = 0
    for (delivery_id, _attempts), name, there in zip(rows, names, statuses, strict=True):
        status = there.get_status(refresh=False) if there is not None else None
        if status is not None and str(getattr(status, "value", status)) in _ALIVE:
            continue
        enqueue(deliver, delivery_id, job_id=name)
        lost += 1
    if lost:
        log.info("webhooks: %s pending deliveries had lost their job; enqueued again", lost)
    return lost


def reconcile() -> None:
    """Give pending deliveries whose job Redis lost a new one (run by the reconciler, workers)."""
    try:
        retry_pending(db.session())
    except Exception:  # never let webhooks stop the rest of the reconciler
        db.session.rollback()
        log.exception("webhook reconciliation failed")
