"""Outgoing webhooks, the domain side: events become WebhookDelivery rows, signed when posted.

The body is JSON; ``X-Newsletter-Signature: sha256=<hex>`` is the HMAC-SHA256 of the exact body
bytes keyed with the webhook's secret, and ``X-Newsletter-Timestamp`` says when it was signed.
Rows are handed to workers once the transaction that made them commits (``tasks.webhook_posts``).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
from collections.abc import Sequence
from typing import Any, cast

import sqlalchemy as sa
from sqlalchemy.orm import Session

from newsletter.delivery import lifecycle
from newsletter.models import Issue, Subscriber, SubscriberStatus, Webhook, WebhookDelivery, utcnow
from newsletter.subscribers import state

EVENTS = (
    "subscriber.confirmed",
    "subscriber.unsubscribed",
    "subscriber.bounced",
    "subscriber.complained",
    "issue.sent",
    "send.paused",
)
# The reason an unsubscribe carries when the reader reported the mail as spam.
COMPLAINT = "complaint"
PENDING_KEY = "webhook_deliveries_to_enqueue"
# The active webhooks as this transaction read them (see _active_hooks).
HOOKS_KEY = "webhook_active_hooks"
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
    session.info.pop(HOOKS_KEY, None)  # this transaction's next event sees it
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
    hooks = _active_hooks(session)
    now = utcnow()
    # Keys in this order: subscribers.state.erase finds a person's payloads by these substrings.
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
        session.info.setdefault(PENDING_KEY, []).extend(ids)
    return ids


def _active_hooks(session: Session) -> Sequence[Webhook]:
    """Return the active webhooks, read once per transaction: a bulk change of 500 people
    emits 500 events, and must not read the webhook table 500 times."""
    # Flask-SQLAlchemy hands a scoped_session: its transaction is the current session's.
    real = session if isinstance(session, Session) else cast(Any, session)()
    transaction = real.get_transaction()
    cached = session.info.get(HOOKS_KEY)
    if cached is not None and transaction is not None and cached[0] is transaction:
        return cast(Sequence[Webhook], cached[1])
    hooks = session.scalars(sa.select(Webhook).where(Webhook.active.is_(True))).all()
    session.info[HOOKS_KEY] = (real.get_transaction(), hooks)  # begun by the read if need be
    return hooks


def _after_rollback(session: Session) -> None:
    if not session.in_transaction():
        session.info.pop(PENDING_KEY, None)


def subscriber_changed(
    session: Session, sub: Subscriber, status: SubscriberStatus, detail: str = ""
) -> None:
    """Emit the webhook event for a subscriber's new status (a subscribers.state listener).

    A spam complaint also unsubscribes: it sends both events, ``subscriber.complained`` first.
    """
    event = _STATUS_EVENT.get(status)
    if event is None:
        return
    payload = {
        "subscriber_id": sub.id,
        "email": sub.email,
        "name": sub.name,
        "status": status.value,
    }
    if status is SubscriberStatus.UNSUBSCRIBED and detail == COMPLAINT:
        emit(session, "subscriber.complained", {**payload, "reason": COMPLAINT})
    emit(session, event, payload)


def issue_sent(session: Session, issue_id: int) -> None:
    """Emit issue.sent for an issue that finished sending (a delivery.lifecycle listener)."""
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


def send_paused(session: Session, issue_id: int, reason: str, automatic: bool) -> None:
    """Emit send.paused for a send that stopped (a delivery.lifecycle listener).

    ``automatic`` says the send paused itself (the relay refused us, too many readers were
    refused): it waits for an editor to look, then resume.
    """
    issue = session.get(Issue, issue_id)
    if issue is None:
        return
    emit(
        session,
        "send.paused",
        {
            "issue_id": issue.id,
            "subject": issue.subject,
            "slug": issue.slug,
            "reason": reason,
            "automatic": automatic,
        },
    )


def listen() -> None:
    """Emit events for subscription changes and finished sends (idempotent)."""
    if subscriber_changed not in state.LISTENERS:
        state.LISTENERS.append(subscriber_changed)
    if issue_sent not in lifecycle.ISSUE_SENT_LISTENERS:
        lifecycle.ISSUE_SENT_LISTENERS.append(issue_sent)
    if send_paused not in lifecycle.ISSUE_PAUSED_LISTENERS:
        lifecycle.ISSUE_PAUSED_LISTENERS.append(send_paused)


def take_pending(session: Session) -> list[int]:
    """Return (and forget) the deliveries the session's committed transaction recorded."""
    return list(session.info.pop(PENDING_KEY, None) or ())


def forget_pending(session: Session) -> None:
    """Forget the deliveries of a transaction that was rolled back."""
    if not session.in_transaction():
        session.info.pop(PENDING_KEY, None)
