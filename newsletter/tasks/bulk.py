"""The job that runs an editor's bulk unsubscribe or erase (``subscribers.bulk_jobs``)."""

from __future__ import annotations

from datetime import timedelta

from flask import Flask

from newsletter.extensions import db, settings
from newsletter.subscribers import bulk_jobs
from newsletter.tasks.mail import enqueued
from newsletter.tasks.queues import DEFAULT_QUEUE, job, name_job

BULK_JOB_TIMEOUT = 3600


# Named by the claim it will make: number ``attempt + 1``.
@job(
    queue=DEFAULT_QUEUE,
    timeout=BULK_JOB_TIMEOUT,
    unique=True,
    name=lambda job_id, attempt: f"bulk-{job_id}-{attempt}",
)
def run_bulk_job(job_id: int) -> str:
    """Run one bulk job to its end, a chunk per transaction."""
    return bulk_jobs.run(db.session(), job_id, lease=lease())


def lease() -> timedelta:
    """Return how long a bulk job's run may stay silent before another may take it over."""
    return timedelta(seconds=settings().send_lease_seconds)


def queue_bulk_job(job_id: int, attempt: int = 0, app: Flask | None = None) -> bool:
    """Queue a bulk job's run; False (never an exception) when Redis did not take it."""
    return enqueued(run_bulk_job, job_id, job_id=name_job(run_bulk_job, job_id, attempt), app=app)
