"""What the web can tell about the workers from Redis: how many are alive, when one was seen.

RQ registers each worker in Redis with a heartbeat (every 30 s while it waits for jobs,
``tasks/polling.py``) and names the worker's Redis connection after it. A worker that stops
cleanly unregisters; one killed outright stays registered until its heartbeat runs out, but
its connection closes with the process, so Redis's list of clients shows at once that it is
gone. Where that list is not available (a managed Redis may refuse CLIENT LIST), the
heartbeat alone decides, within ``STALE_AFTER``.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import redis
from rq import Worker

from newsletter.tasks.polling import HEARTBEAT_EVERY

# A worker whose last heartbeat is older than this has missed two: it is not counted alive.
STALE_AFTER = timedelta(seconds=3 * HEARTBEAT_EVERY)


@dataclass(frozen=True)
class Workers:
    """How many worker processes are alive now, and the newest heartbeat of any registered one.

    A worker process registers two RQ workers (its mail worker and its webhook thread); they
    count as one, by host and process id.
    """

    alive: int
    last_seen: datetime | None


def workers(connection: redis.Redis) -> Workers:
    """Read the workers' registrations and heartbeats; raise RedisError when Redis fails."""
    registered = Worker.all(connection=connection)
    try:
        connected: set[str] | None = {c.get("name", "") for c in connection.client_list()}
    except redis.ResponseError:
        connected = None
    now = datetime.now(UTC)
    seen = [w.last_heartbeat for w in registered if w.last_heartbeat is not None]
    alive = {
        (w.hostname, w.pid)
        for w in registered
        if w.last_heartbeat is not None
        and now - w.last_heartbeat < STALE_AFTER
        and (connected is None or w.name in connected)
    }
    return Workers(alive=len(alive), last_seen=max(seen, default=None))
