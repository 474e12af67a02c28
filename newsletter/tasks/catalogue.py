"""The editor's back-catalogue imports: their job, their progress in Redis, their rebuild.

The database holds each import and its outcome (``archive.browser_imports``); the progress of
a running one lives in Redis (a hash per import, for a day), since the import writes its
issues in one transaction that nothing else could read until it ends.
"""

from __future__ import annotations

import logging
from datetime import timedelta

import redis
from flask import Flask

from newsletter.archive import browser_imports
from newsletter.archive.sources import fetching_for
from newsletter.extensions import db, get_redis, settings
from newsletter.models import utcnow
from newsletter.tasks.mail import enqueued, grace
from newsletter.tasks.queues import DEFAULT_QUEUE, job, name_job

log = logging.getLogger(__name__)

CATALOGUE_JOB_TIMEOUT = 1800
PROGRESS_KEY = "newsletter:catalogue-import:{id}"
PROGRESS_TTL = 24 * 3600


@job(
    queue=DEFAULT_QUEUE,
    timeout=CATALOGUE_JOB_TIMEOUT,
    unique=True,
    name=lambda import_id, attempt: f"catalogue-import-{import_id}-{attempt}",
)
def run_catalogue_import(import_id: int) -> str:
    """Run one of the editor's back-catalogue imports, with its progress in Redis."""
    session = db.session()
    attempt = browser_imports.claim(session, import_id)
    if attempt is None:
        return "not queued"
    client = get_redis()
    key = PROGRESS_KEY.format(id=import_id)

    def note(phase: str, done: int, total: int = 0) -> None:
        if done % 20 and done != total:
            return  # one write in twenty entries is enough for a progress bar
        try:
            client.hset(key, mapping={"phase": phase, "done": done, "total": total})
            client.expire(key, PROGRESS_TTL)
        except redis.RedisError:
            pass  # the progress is only shown: the import goes on without it

    note("reading", 0)
    return browser_imports.run(
        session,
        import_id,
        attempt,
        fetching_for(settings()),
        tick=lambda n: note("reading", n),
        progress=lambda done, total: note("writing", done, total),
    )


def queue_catalogue_import(import_id: int, attempt: int = 0, app: Flask | None = None) -> None:
    """Queue an import's run; never raises for Redis (the tick queues it later)."""
    name = name_job(run_catalogue_import, import_id, attempt)
    enqueued(run_catalogue_import, import_id, job_id=name, app=app)


def progress_of(import_id: int) -> dict[str, object]:
    """Return a running import's progress: phase (reading, writing), done, total."""
    try:
        raw = get_redis().hgetall(PROGRESS_KEY.format(id=import_id))
    except redis.RedisError:
        raw = {}
    got = {k.decode(): v.decode() for k, v in raw.items()}
    return {
        "phase": got.get("phase", ""),
        "done": int(got.get("done", 0)),
        "total": int(got.get("total", 0)),
    }


def reconcile() -> None:
    """Queue again the imports whose job Redis lost, and those whose run died."""
    timeout = timedelta(seconds=CATALOGUE_JOB_TIMEOUT + 60)
    for import_id, attempt in browser_imports.lost(db.session(), utcnow(), grace(), timeout):
        queue_catalogue_import(import_id, attempt)
