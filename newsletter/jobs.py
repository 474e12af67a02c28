"""The only functions RQ calls: ids in, reload, re-check, one unit of work.

Each runs inside the app context that worker.py (or a test) provides, and can be called
directly from a test.
"""

from __future__ import annotations

import logging

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
