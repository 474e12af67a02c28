"""Send, resume, test, pause and cancel an issue: what the CLI, the editor and the API call.

The issue actions (``issues.actions``) change the database and say which batches are now
due (``plan_send``, ``plan_resume``); ``send_issue`` and ``resume_issue`` here run them and
hand those batches to workers, one RQ job per batch and never two waiting at once, so a job
never sees an uncommitted send. Test, pause and cancel need no worker: they are the actions'
own, named here so every edge takes all five from one place.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from datetime import datetime

from flask import Flask
from redis.exceptions import RedisError
from rq.exceptions import InvalidJobOperation, NoSuchJobError
from rq.job import Job, JobStatus

from newsletter.extensions import get_redis, settings, this_app
from newsletter.issues import actions
from newsletter.issues.actions import cancel_issue, pause_issue
from newsletter.services import mailer
from newsletter.tasks.jobs import deliver_batch
from newsletter.tasks.process import owner_is_dead
from newsletter.tasks.queues import ALIVE_KEY, SEND_QUEUE, enqueue_each, get_queue, name_job

log = logging.getLogger(__name__)

__all__ = ["cancel_issue", "dispatch", "pause_issue", "resume_issue", "send_issue", "send_test"]


QUEUE_AWAY = (
    " Redis does not answer right now: the workers start these copies as soon as it does"
    " (nothing is lost; the database holds them)."
)


def send_issue(issue_id: int, at: datetime | None = None) -> str:
    """Queue an issue now (and hand its batches to workers), or schedule it; say what happened."""
    done = actions.plan_send(issue_id, at, batch_size=settings().batch_size)
    return done.message + _hand_out(issue_id, done.batches)


def send_test(issue_id: int, to_email: str) -> None:
    """Send one copy of the issue now to ``to_email``, its subject marked [Test]."""
    actions.send_test(issue_id, to_email, mailer())


def resume_issue(issue_id: int) -> str:
    """Resume a paused send and hand its remaining batches to workers; say what happened."""
    done = actions.plan_resume(issue_id)
    return done.message + _hand_out(issue_id, done.batches)


def _hand_out(issue_id: int, batches: Iterable[int]) -> str:
    """Dispatch committed batches; with Redis away, leave them to the reconciler and say so."""
    batches = list(batches)
    if not batches:
        return ""
    try:
        dispatch(issue_id, batches)
    except RedisError:
        log.warning("issue %s: batches not enqueued, Redis does not answer", issue_id)
        return QUEUE_AWAY
    return ""


def dispatch(issue_id: int, batches: Iterable[int], *, app: Flask | None = None) -> int:
    """Enqueue a delivery job per batch unless one is waiting or running; return how many."""
    app = this_app(app)
    redis = get_redis(app)
    queue = get_queue(SEND_QUEUE, app)
    waiting = {JobStatus.QUEUED, JobStatus.SCHEDULED, JobStatus.DEFERRED}
    due: list[tuple[int, int]] = []
    in_queue: set[str] | None = None
    for batch in batches:
        job_id = name_job(deliver_batch, issue_id, batch)
        alive = redis.get(ALIVE_KEY.format(issue=issue_id, batch=batch))
        if alive is not None and not owner_is_dead(alive.decode(errors="replace")):
            continue  # a live worker is on it right now
        try:
            job = Job.fetch(job_id, connection=redis, serializer=queue.serializer)
        except NoSuchJobError:
            job = None
        if job is not None:
            status = job.get_status(refresh=False)
            if status == JobStatus.QUEUED and in_queue is None:
                in_queue = set(queue.get_job_ids())
            # A job can say "queued" yet be gone from the list (popped by a worker that was
            # stopped before it started it): only one really waiting in line counts.
            if status in waiting and (status != JobStatus.QUEUED or job_id in (in_queue or ())):
                continue
            # Finished, failed, stopped, or started by a worker that died: make room for a new one.
            try:
                job.delete()
            except (InvalidJobOperation, NoSuchJobError):
                pass  # it expired or another dispatcher removed it since the fetch: room made
        due.append((issue_id, batch))
    return enqueue_each(deliver_batch, due, app)
