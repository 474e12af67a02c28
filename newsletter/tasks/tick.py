"""The periodic tick: start what is due, take back dead workers' work, rebuild lost jobs.

It runs at every worker start and every RECONCILE_INTERVAL in one worker (a Redis lock picks
it): the database says what should be happening, and Redis is made to match.
"""

from __future__ import annotations

import logging

from newsletter.delivery.lifecycle import reconcile as reconcile_sends
from newsletter.extensions import db, settings
from newsletter.issues.due import start_due
from newsletter.models import utcnow
from newsletter.subscribers.expiry import expire_pending, expired_before
from newsletter.tasks.catalogue import reconcile as reconcile_catalogue_imports
from newsletter.tasks.dispatch import dispatch
from newsletter.tasks.evergreen import evergreen_tick
from newsletter.tasks.feed import schedule_feed_poll
from newsletter.tasks.mail import reconcile as reconcile_mail
from newsletter.tasks.manage import reconcile as reconcile_address_mail
from newsletter.tasks.process import owner_is_dead
from newsletter.tasks.webhook_posts import reconcile as reconcile_webhooks

log = logging.getLogger(__name__)


def reconcile() -> str:
    """Take back expired leases, close finished sends, re-enqueue batches whose jobs were lost."""
    found = reconcile_sends(db.session(), utcnow(), dead=owner_is_dead)
    db.session.commit()
    reconcile_webhooks()  # pending webhook deliveries whose job Redis lost get a new one
    reconcile_mail()  # owed confirmation and welcome mails, imports: the same
    reconcile_address_mail()  # owed address-change links and notices: the same
    reconcile_catalogue_imports()  # the editor's back-catalogue imports: the same
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
    started = start_due(db.session(), utcnow(), settings())
    for issue_id, batches in started:
        dispatch(issue_id, range(batches))
    if started:
        log.info("scheduler started issues %s", [i for i, _ in started])
    # Sign-ups never confirmed stop holding their address (subscribers/expiry.py).
    expired = expire_pending(db.session(), expired_before(utcnow(), settings().confirm_max_age))
    db.session.commit()
    if expired:
        log.info("expired %s sign-ups never confirmed", expired)
    try:
        schedule_feed_poll()  # FEED_URL, when a poll is due
    except Exception:  # the feed's own trouble never stops the tick
        db.session.rollback()
        log.exception("could not schedule the feed's poll")
    try:
        sequence = evergreen_tick()  # the back catalogue for readers who start from tip 1
    except Exception:  # a bad moment for the sequence never stops the tick
        db.session.rollback()
        log.exception("could not run the evergreen sequence's tick")
        sequence = "evergreen: failed"
    return f"started {[i for i, _ in started]}; expired {expired}; {sequence}; " + reconcile()
