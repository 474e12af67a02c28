"""The mail that offers a reader already subscribed the group whose form they signed up on."""

from __future__ import annotations

import logging
from datetime import datetime

from flask import Flask

from newsletter.extensions import db, settings
from newsletter.models import Subscriber, SubscriberStatus
from newsletter.services import mailer
from newsletter.subscribers.groups import JOIN_MAX_AGE, join_token
from newsletter.subscribers.mails import join_group_mail
from newsletter.tasks.mail import MAIL_JOB_TIMEOUT, enqueued, send_mail, stamp
from newsletter.tasks.queues import MAIL_QUEUE, job, name_job

log = logging.getLogger(__name__)


def queue_join_group(
    subscriber_id: int, tag: str, asked_at: datetime, app: Flask | None = None
) -> None:
    """Queue the join link for ``tag`` asked at ``asked_at``; never raises for Redis.

    Nothing in the database owes it: with Redis down it is lost, and the reader signs up again.
    """
    job_id = name_job(send_join_group, subscriber_id, asked_at)
    enqueued(send_join_group, subscriber_id, tag, stamp(asked_at), job_id=job_id, app=app)


@job(
    queue=MAIL_QUEUE,
    timeout=MAIL_JOB_TIMEOUT,
    unique=True,
    name=lambda subscriber_id, asked_at: f"join-group-{subscriber_id}-{stamp(asked_at)}",
)
def send_join_group(subscriber_id: int, tag: str, asked: str) -> str:
    """Mail a confirmed reader the link that adds the group's tag, should they want it."""
    sub = db.session.get(Subscriber, subscriber_id)
    if sub is None or sub.status is not SubscriberStatus.CONFIRMED:
        db.session.commit()
        return "skipped: not confirmed"
    found = settings()
    token = join_token(found.secret_key, found.secret_key_fallbacks, sub, tag)
    to, name = sub.email, sub.name
    db.session.commit()  # hold no transaction while SMTP talks
    m = mailer()
    url = f"{m.links.base_url}/join/{token}"
    msg = join_group_mail(m, to, name, group=tag, join_url=url, valid_days=JOIN_MAX_AGE // 86400)
    refused = send_mail(to, m.to_bytes(msg))
    if refused is not None:
        log.warning("join link for subscriber %s refused for good: %s", subscriber_id, refused)
        return f"refused: {refused}"
    log.info("join link mailed for subscriber %s (asked %s)", subscriber_id, asked)
    return "sent"
