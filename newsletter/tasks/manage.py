"""Mails of the reader's own page: the link to a new address, the notice to the old one, and
the link that opens the page's sensitive actions (asked for on the page, mailed at once).

As with confirmation mails (``tasks.mail``), the database says what is owed: a reader's
``new_email_due_at`` (the link to the new address) or ``old_email_due_at`` (the notice to the
address just replaced), cleared once the server took the mail. Each job's id names whose mail
owed since when, so the request's enqueue and the reconciler's are one job.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

import sqlalchemy as sa
from flask import Flask
from sqlalchemy.orm import Session

from newsletter.extensions import db, settings
from newsletter.models import Subscriber
from newsletter.services import mailer, tokens
from newsletter.subscribers.links import ACCESS_MAX_AGE
from newsletter.subscribers.mails import access_link_mail, address_link_mail, address_notice_mail
from newsletter.tasks.mail import (
    MAIL_JOB_TIMEOUT,
    MAIL_OWED_FOR,
    OwedMail,
    enqueued,
    guarded,
    mail_owed,
    queue_owed,
    rebuild_owed,
    send_mail,
    settle,
    stamp,
)
from newsletter.tasks.queues import MAIL_QUEUE, job, name_job

log = logging.getLogger(__name__)


def queue_address_confirmation(
    subscriber_id: int, due_at: datetime, app: Flask | None = None
) -> None:
    """Queue the link to the new address reserved at ``due_at``; never raises for Redis."""
    queue_owed(send_address_confirmation, subscriber_id, due_at, app)


def queue_address_notice(subscriber_id: int, due_at: datetime, app: Flask | None = None) -> None:
    """Queue the notice to the replaced address owed since ``due_at``; never raises for Redis."""
    queue_owed(send_address_notice, subscriber_id, due_at, app)


def queue_access_link(subscriber_id: int, asked_at: datetime, app: Flask | None = None) -> None:
    """Queue the page's full link asked for at ``asked_at``; never raises for Redis.

    Nothing in the database owes it: with Redis down it is lost, and the reader asks again.
    """
    job_id = name_job(send_access_link, subscriber_id, asked_at)
    enqueued(send_access_link, subscriber_id, stamp(asked_at), job_id=job_id, app=app)


@job(
    queue=MAIL_QUEUE,
    timeout=MAIL_JOB_TIMEOUT,
    unique=True,
    name=lambda subscriber_id, asked_at: f"manage-link-{subscriber_id}-{stamp(asked_at)}",
)
def send_access_link(subscriber_id: int, asked: str) -> str:
    """Mail the reader's current address the link opening data, erasing and a new address."""
    sub = db.session.get(Subscriber, subscriber_id)
    if sub is None:
        db.session.commit()
        return "skipped: erased"
    to, name = sub.email, sub.name
    # Signed for the address it goes to: a change of address meanwhile voids it.
    token = tokens().access_token(sub.id, sub.created_at, to)
    db.session.commit()  # hold no transaction while SMTP talks
    m = mailer()
    msg = access_link_mail(m, m.links, to, name, token, minutes=ACCESS_MAX_AGE // 60)
    refused = send_mail(to, m.to_bytes(msg))
    if refused is not None:
        log.warning("page link for subscriber %s refused for good: %s", subscriber_id, refused)
        return f"refused: {refused}"
    log.info("page link mailed for subscriber %s (asked %s)", subscriber_id, asked)
    return "sent"


def _owing(
    subscriber_id: int, column: str, due: str | None
) -> tuple[Subscriber, str, datetime] | None:
    """Return the reader, the address in ``column`` ("new_email" or "old_email") and since when
    its mail is owed, if it still is for the request ``due`` names; else None (work ended).

    A job queued for an earlier request than the newest one leaves the mail to the newer job.
    """
    sub = db.session.get(Subscriber, subscriber_id)
    to, owed = getattr(sub, column, None), getattr(sub, f"{column}_due_at", None)
    if sub is None or to is None or owed is None or due not in (None, stamp(owed)):
        db.session.commit()
        return None
    return sub, to, owed


@job(
    queue=MAIL_QUEUE,
    timeout=MAIL_JOB_TIMEOUT,
    unique=True,
    name=lambda subscriber_id, due_at: f"address-{subscriber_id}-{stamp(due_at)}",
)
def send_address_confirmation(subscriber_id: int, due: str | None = None) -> str:
    """Mail the link that makes the wanted address the reader's, to that address."""
    found = _owing(subscriber_id, "new_email", due)
    if found is None:
        return "skipped: nothing owed"
    sub, to, owed = found
    if db.session.scalar(sa.select(Subscriber.id).where(Subscriber.email == to)) is not None:
        # Someone took the address since the request: they get nothing from another's page.
        settle("new_email_due_at", subscriber_id, owed)
        return "skipped: address taken meanwhile"
    m = mailer()
    token = tokens().address_token(sub.id, sub.version, to)
    msg = address_link_mail(m, m.links, to, sub.name, token)
    return mail_owed("address link", to, msg, "new_email_due_at", subscriber_id, owed)


@job(
    queue=MAIL_QUEUE,
    timeout=MAIL_JOB_TIMEOUT,
    unique=True,
    name=lambda subscriber_id, due_at: f"address-notice-{subscriber_id}-{stamp(due_at)}",
)
def send_address_notice(subscriber_id: int, due: str | None = None) -> str:
    """Tell the address a reader just replaced that it no longer gets the tips."""
    found = _owing(subscriber_id, "old_email", due)
    if found is None:
        return "skipped: nothing owed"
    sub, to, owed = found
    msg = address_notice_mail(mailer(), to, sub.name, sub.email)
    # Told (or refused for good): the old address is kept no longer.
    return mail_owed(
        "address notice", to, msg, "old_email_due_at", subscriber_id, owed, old_email=None
    )


# --- the rebuild ---------------------------------------------------------------------------------


def reconcile() -> int:
    """Enqueue every address-change mail the database owes and Redis lost."""
    return guarded("address mail", _rebuild)


def _rebuild(session: Session, now: datetime) -> int:
    max_age = timedelta(seconds=settings().confirm_max_age)
    # Give up on mail owed too long (a link that late may not outlive CONFIRM_MAX_AGE); an
    # old address nobody could tell is not kept either.
    session.execute(
        sa.update(Subscriber)
        .where(Subscriber.new_email_due_at < now - min(MAIL_OWED_FOR, max_age))
        .values(new_email_due_at=None, updated_at=Subscriber.updated_at)
    )
    session.execute(
        sa.update(Subscriber)
        .where(Subscriber.old_email_due_at < now - MAIL_OWED_FOR)
        .values(old_email_due_at=None, old_email=None, updated_at=Subscriber.updated_at)
    )
    enqueued = rebuild_owed(
        session,
        now,
        [
            OwedMail(
                Subscriber.new_email_due_at,
                Subscriber.new_email.is_not(None),
                send_address_confirmation,
            ),
            OwedMail(
                Subscriber.old_email_due_at,
                Subscriber.old_email.is_not(None),
                send_address_notice,
            ),
        ],
    )
    if enqueued:
        log.info("reconciler: %s owed address mails had lost their job; enqueued again", enqueued)
    return enqueued
