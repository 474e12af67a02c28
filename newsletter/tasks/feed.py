"""Poll the blog feed (``FEED_URL``): the tick claims each due poll, a worker's job runs it.

The tick (``tasks.tick``) asks ``schedule_feed_poll`` every time it runs; the database says
whether a poll is due (``archive.poll.claim_poll``), so a poll is claimed once per
``FEED_POLL_INTERVAL`` however many workers tick. The job then holds a Redis lock while it
polls, so two polls never work on one feed at once; the entries' unique keys in the database
are the last guard. A lost job (Redis flushed) costs one interval: the next poll is claimed
when it comes due.
"""

from __future__ import annotations

import logging

import redis

from newsletter.archive.poll import claim_poll, poll_feed
from newsletter.archive.sources import fetching_for
from newsletter.extensions import db, get_redis, settings
from newsletter.models import utcnow
from newsletter.tasks.process import worker_name
from newsletter.tasks.queues import DEFAULT_QUEUE, enqueue, job, name_job

log = logging.getLogger(__name__)

FEED_LOCK = "newsletter:feed-poll-lock"
# The fetch's own deadline is 30 s; the lock outlives a poll that runs up to this long.
POLL_JOB_TIMEOUT = 120


@job(queue=DEFAULT_QUEUE, timeout=POLL_JOB_TIMEOUT, unique=True, name=lambda claim: f"feed-{claim}")
def run_feed_poll(claim: str) -> str:
    """Poll FEED_URL once, unless another worker is polling it right now."""
    feed = settings().feed
    if feed is None:
        return "no FEED_URL"
    client = get_redis()
    me = f"{worker_name()}:{claim}"
    if not client.set(FEED_LOCK, me, nx=True, ex=POLL_JOB_TIMEOUT):
        return "busy: another worker is polling the feed"
    try:
        polled = poll_feed(db.session(), feed, fetching_for(settings()))
    finally:
        if client.get(FEED_LOCK) == me.encode():
            client.delete(FEED_LOCK)
    return f"{polled.status}: archived {polled.archived}, issues {polled.issues} {polled.error}"


def schedule_feed_poll() -> str | None:
    """Claim the feed's poll if one is due and queue its job; return the claim, if any."""
    feed = settings().feed
    if feed is None:
        return None
    claim = claim_poll(db.session(), feed, utcnow())
    if claim is None:
        return None
    try:
        enqueue(run_feed_poll, claim, job_id=name_job(run_feed_poll, claim))
    except redis.RedisError:
        log.warning("feed poll %s not queued: Redis did not answer; the next one will be", claim)
    return claim
