"""Per-client limits kept in Redis: a fixed window counted with INCR and EXPIRE."""

from __future__ import annotations

import logging
import time

import redis

log = logging.getLogger(__name__)

DEFAULT_SUBSCRIBE_LIMIT = "10/600"


def parse_limit(raw: object, default: str = DEFAULT_SUBSCRIBE_LIMIT) -> tuple[int, int]:
    """Turn '10/600' (hits per seconds) into (10, 600); fall back to ``default`` if unusable."""
    text = str(raw or default)
    try:
        hits, seconds = (int(x) for x in text.split("/", 1))
    except ValueError:
        log.warning("ignoring a malformed rate limit %r, using %s", text, default)
        return parse_limit(default)
    if hits < 1 or seconds < 1:
        return parse_limit(default)
    return hits, seconds


def allow(client: redis.Redis, name: str, who: str, limit: tuple[int, int]) -> bool:
    """Count one hit for ``who`` under ``name``; return False once the window's limit is passed.

    When Redis does not answer the visitor is let through: losing a sign-up is worse than
    letting a few extra through while the queue is down anyway.
    """
    hits, seconds = limit
    window = int(time.time() // seconds)
    key = f"ratelimit:{name}:{who}:{window}"
    try:
        pipe = client.pipeline(transaction=False)  # INCR and EXPIRE need no MULTI
        pipe.incr(key)
        pipe.expire(key, seconds + 1)
        count = pipe.execute()[0]
    except redis.RedisError:
        log.warning("rate limit %s not checked: Redis did not answer", name)
        return True
    return int(count) <= hits
