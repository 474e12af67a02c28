"""Outgoing webhooks: events become WebhookDelivery rows that a worker POSTs, signed, retried.

The body is JSON; ``X-Newsletter-Signature: sha256=<hex>`` is the HMAC-SHA256 of the exact body
bytes keyed with the webhook's secret, and ``X-Newsletter-Timestamp`` says when it was signed.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import secrets
import time
import urllib.error
import urllib.request
from datetime import timedelta
from typing import Any

import sqlalchemy as sa
from flask import current_app
from sqlalchemy.orm import Session

from .extensions import db
from .models import Subscriber, SubscriberStatus, Webhook, WebhookDelivery, utcnow

log = logging.getLogger(__name__)

EVENTS = ("subscriber.confirmed", "subscriber.unsubscribed", "subscriber.bounced", "issue.sent")
MAX_ATTEMPTS = 6
TIMEOUT = 10
USER_AGENT = "TipOfTheWeek-Webhooks/1"
_PENDING_KEY = "webhook_deliveries_to_enqueue"
_STATUS_EVENT = {
    SubscriberStatus.CONFIRMED: "subscriber.confirmed",
    SubscriberStatus.UNSUBSCRIBED: "subscriber.unsubscribed",
    SubscriberStatus.BOUNCED: "subscriber.bounced",
}


def register_webhook(session: Session, url: str, events: list[str]) -> Webhook:
    """Add an active webhook with a fresh signing secret."""
    hook = Webhook(
        url=url,
        secret=secrets.token_hex(24),
        events=",".join(e for e in EVENTS if e in events),
        active=True,
    )
    session.add(hook)
    session.flush()
    return hook


def sign(secret: str, body: bytes) -> str:
    """Return the signature header value for a body."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def emit(session: Session, event: str, payload: dict[str, Any]) -> list[int]:
    """Record a delivery of ``event`` for every active webhook that wants it.

    The deliveries are enqueued once the caller's transaction commits, so a worker never looks
    for a row that is not there yet, and a rolled-back change sends nothing.
    """
    if event not in EVENTS:
        raise ValueError(f"unknown webhook event {event!r}")
    hooks = session.scalars(sa.select(Webhook).where(Webhook.active.is_(True))).all()
    now = utcnow()
    # Keys in this order: subscriptions.erase finds a person's payloads by these substrings.
    body = json.dumps(
        {"event": event, "created_at": now.isoformat(), "data": payload}, ensure_ascii=False
    )
    ids = []
    for hook in hooks:
        if event not in hook.events.split(","):
            continue
        row = WebhookDelivery(webhook_id=hook.id, event=event, payload=body, created_at=now)
        session.add(row)
        session.flush()
        ids.append(row.id)
    if ids:
        session.info.setdefault(_PENDING_KEY, []).extend(ids)
    return ids


def _after_commit(session: Session) -> None:
    ids = session.info.pop(_PENDING_KEY, None)
    if not ids:
        return
    from .queues import enqueue

    for delivery_id in ids:
        try:
            enqueue(deliver, delivery_id, job_id=job_id(delivery_id, 0))
        except Exception:  # the row stays pending; retry_pending picks it up
            log.exception("could not enqueue webhook delivery %s", delivery_id)


def _after_rollback(session: Session) -> None:
    if not session.in_transaction():
        session.info.pop(_PENDING_KEY, None)


def subscriber_changed(session: Session, sub: Subscriber, status: SubscriberStatus) -> None:
    """Emit the webhook event for a subscriber's new status (a subscriptions listener)."""
    event = _STATUS_EVENT.get(status)
    if event is None:
        return
    emit(
        session,
        event,
        {"subscriber_id": sub.id, "email": sub.email, "name": sub.name, "status": status.value},
    )


def issue_sent(session: Session, issue_id: int) -> None:
    """Emit issue.sent for an issue that finished sending (a sending listener)."""
    from .models import Issue

    issue = session.get(Issue, issue_id)
    if issue is None:
        return
    session.refresh(issue)  # the finishing UPDATE bypassed the identity map
    emit(
        session,
        "issue.sent",
        {
            "issue_id": issue.id,
            "subject": issue.subject,
            "slug": issue.slug,
            "sent_at": issue.sent_at.isoformat() if issue.sent_at else None,
        },
    )


_installed = False


def install(app: Any = None) -> None:
    """Hook into subscription changes and commits once per process, and into worker start."""
    if app is not None:
        hooks = app.extensions.setdefault("worker_start_hooks", [])
        if reconcile not in hooks:
            hooks.append(reconcile)
    global _installed
    if _installed:
        return
    from . import subscriptions

    listeners = getattr(subscriptions, "LISTENERS", None)
    if listeners is not None and subscriber_changed not in listeners:
        listeners.append(subscriber_changed)
    from . import sending

    sent_listeners = getattr(sending, "ISSUE_SENT_LISTENERS", None)
    if sent_listeners is not None and issue_sent not in sent_listeners:
        sent_listeners.append(issue_sent)
    sa.event.listen(Session, "after_commit", _after_commit)
    sa.event.listen(Session, "after_soft_rollback", lambda s, _t: _after_rollback(s))
    _installed = True


def backoff(attempt: int, base: float) -> float:
    """Return the wait before retry number ``attempt`` (1-based): base, 4×base, 16×base …"""
    return base * (4 ** (attempt - 1))


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


def _post(url: str, body: bytes, headers: dict[str, str]) -> int:
    opener = urllib.request.build_opener(_NoRedirect)
    req = urllib.request.Request(url, data=body, headers=headers, method="POST")
    try:
        with opener.open(req, timeout=TIMEOUT) as resp:
            resp.read(65536)
            return int(resp.status)
    except urllib.error.HTTPError as exc:
        exc.close()
        return int(exc.code)


def deliver(delivery_id: int) -> str:
    """POST one webhook delivery; on failure schedule a retry with exponential backoff (RQ job)."""
    session = db.session
    row = session.get(WebhookDelivery, delivery_id)
    if row is None or row.status != "pending":
        return "skipped"
    hook = session.get(Webhook, row.webhook_id)
    if hook is None or not hook.active:
        row.status = "failed"
        row.last_error = "webhook removed or disabled"
        session.commit()
        return "skipped"
    body = row.payload.encode("utf-8")
    headers = {
        "Content-Type": "application/json",
        "User-Agent": USER_AGENT,
        "X-Newsletter-Event": row.event,
        "X-Newsletter-Delivery": str(row.id),
        "X-Newsletter-Timestamp": str(int(time.time())),
        "X-Newsletter-Signature": sign(hook.secret, body),
    }
    row.attempts += 1
    error = ""
    code: int | None = None
    try:
        code = _post(hook.url, body, headers)
        if not 200 <= code < 300:
            error = f"HTTP {code}"
    except Exception as exc:  # DNS, refused, timeout, TLS: all worth a retry
        error = f"{type(exc).__name__}: {exc}"[:300]
    row.response_code = code
    row.last_error = error
    if not error:
        row.status = "ok"
        row.delivered_at = utcnow()
        session.commit()
        return "delivered"
    if row.attempts >= MAX_ATTEMPTS:
        row.status = "failed"
        session.commit()
        return "failed for good"
    session.commit()
    _schedule_retry(row.id, row.attempts)
    return f"retry scheduled: {error}"


def job_id(delivery_id: int, attempts: int) -> str:
    """Name the job for a delivery's next try: one name per try, so a lost one can be told."""
    return f"webhook-{delivery_id}-{attempts}"


def _schedule_retry(delivery_id: int, attempts: int) -> None:
    from .queues import get_queue

    base = float(current_app.config.get("WEBHOOK_RETRY_BASE", 30))
    delay = backoff(attempts, base)
    queue = get_queue()
    name = job_id(delivery_id, attempts)
    if delay <= 0:
        queue.enqueue(deliver, delivery_id, job_id=name, failure_ttl=7 * 24 * 3600, result_ttl=3600)
    else:
        queue.enqueue_in(
            timedelta(seconds=delay), deliver, delivery_id, job_id=name, failure_ttl=7 * 24 * 3600
        )


# Jobs in these states will still run (or are running): nothing is lost.
_ALIVE = {"queued", "started", "deferred", "scheduled"}


def retry_pending(
    session: Session, older_than: timedelta = timedelta(minutes=1), limit: int = 1000
) -> int:
    """Re-enqueue pending deliveries whose next job is gone (Redis flushed); return how many.

    Rows younger than ``older_than`` are left alone: their job may be enqueued just after the
    commit that made them. A lost retry goes out at once rather than after its backoff.
    """
    from rq.job import Job
    from rq.serializers import JSONSerializer

    from . import get_redis
    from .queues import enqueue

    cutoff = utcnow() - older_than
    rows = session.execute(
        sa.select(WebhookDelivery.id, WebhookDelivery.attempts)
        .where(WebhookDelivery.status == "pending", WebhookDelivery.created_at < cutoff)
        .order_by(WebhookDelivery.id)
        .limit(limit)
    ).all()
    session.commit()  # end the read: SQLite holds its write lock for the whole transaction
    if not rows:
        return 0
    redis = get_redis()
    names = [job_id(i, attempts) for i, attempts in rows]
    statuses = Job.fetch_many(names, connection=redis, serializer=JSONSerializer)
    lost = 0
    for (delivery_id, _attempts), name, job in zip(rows, names, statuses, strict=True):
        status = job.get_status(refresh=False) if job is not None else None
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
        retry_pending(db.session)
    except Exception:  # never let webhooks stop the rest of the reconciler
        db.session.rollback()
        log.exception("webhook reconciliation failed")
