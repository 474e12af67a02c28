"""The evergreen sequence's part of the tick: hand due readers their next tip, send it.

``delivery.evergreen`` decides who gets which tip and writes the ledger's rows; here those
rows are handed to the normal delivery job (``deliver_batch`` with the evergreen batch
number), and copies whose job was lost or whose worker died are handed out again.

A reader who confirms or joins does not wait for the tick: ``queue_first_tip`` enqueues
``first_tip``, the same step for that one reader. Their due time (now) is in the database
first, so a lost job costs nothing but the wait for the next tick.
"""

from __future__ import annotations

import logging
from datetime import datetime

from flask import Flask

from newsletter.delivery import evergreen
from newsletter.extensions import db, settings
from newsletter.models import utcnow
from newsletter.tasks.dispatch import dispatch
from newsletter.tasks.mail import MAIL_JOB_TIMEOUT, enqueued, stamp
from newsletter.tasks.process import owner_is_dead
from newsletter.tasks.queues import MAIL_QUEUE, job, name_job

log = logging.getLogger(__name__)


def evergreen_tick() -> str:
    """Hand the due readers (a bounded number) their next tip and dispatch what is queued."""
    session = db.session()
    now = utcnow()
    done = evergreen.step(session, now, settings().evergreen_interval)
    session.commit()
    sweep = evergreen.reconcile(session, now, dead=owner_is_dead)
    session.commit()
    issues = sorted(set(done.queued) | set(sweep.due))
    enqueued = sum(dispatch(issue_id, [evergreen.EVERGREEN_BATCH]) for issue_id in issues)
    if done.queued or sweep.reclaimed:
        log.info(
            "evergreen: %s tips handed out, %s copies taken back, %s jobs enqueued",
            sum(done.queued.values()),
            sweep.reclaimed,
            enqueued,
        )
    return f"evergreen: {sum(done.queued.values())} handed out, {enqueued} enqueued"


# In the mail queue, beside the welcome: a reader is waiting for it, unlike the tick's work.
@job(
    queue=MAIL_QUEUE,
    timeout=MAIL_JOB_TIMEOUT,
    unique=True,
    name=lambda subscriber_id, due: f"evergreen-{subscriber_id}-{due}",
)
def first_tip(subscriber_id: int, due: str = "") -> str:
    """Hand one reader who just confirmed or joined their next tip now, and send it."""
    session = db.session()
    done = evergreen.step(session, utcnow(), settings().evergreen_interval, reader=subscriber_id)
    session.commit()
    for issue_id in done.queued:
        dispatch(issue_id, [evergreen.EVERGREEN_BATCH])
    if not done.queued:
        return f"evergreen: nothing due for reader {subscriber_id}"
    return f"evergreen: tip {next(iter(done.queued))} for reader {subscriber_id}"


def queue_first_tip(subscriber_id: int, due_at: datetime | None, app: Flask | None = None) -> None:
    """Queue the tip a reader is owed since ``due_at`` (None: not in the sequence, nothing).

    Called after the commit that set the due time; never raises for Redis (the tick then
    hands it out).
    """
    if due_at is None:
        return
    due = stamp(due_at)
    enqueued(first_tip, subscriber_id, due, job_id=name_job(first_tip, subscriber_id, due), app=app)
