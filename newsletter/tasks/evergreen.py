"""The evergreen sequence's part of the tick: hand due readers their next tip, send it.

``delivery.evergreen`` decides who gets which tip and writes the ledger's rows; here those
rows are handed to the normal delivery job (``deliver_batch`` with the evergreen batch
number), and copies whose job was lost or whose worker died are handed out again.
"""

from __future__ import annotations

import logging

from newsletter.delivery import evergreen
from newsletter.extensions import db, settings
from newsletter.models import utcnow
from newsletter.tasks.dispatch import dispatch
from newsletter.tasks.process import owner_is_dead

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
