"""SEND_RATE across every worker: one token bucket in Redis, taken by an atomic Lua script."""

from __future__ import annotations

import time

import redis

# KEYS[1] bucket; ARGV rate (tokens/s), capacity (burst), now (s, float). Returns seconds to wait.
# Redis's own clock is not used so the script stays deterministic for replication; workers'
# clocks only need to agree roughly (NTP), and a skewed one can only wait longer, not burst.
_TAKE = """
local rate = tonumber(ARGV[1])
local capacity = tonumber(ARGV[2])
local now = tonumber(ARGV[3])
local state = redis.call('HMGET', KEYS[1], 'tokens', 'at')
local tokens = tonumber(state[1])
local at = tonumber(state[2])
if tokens == nil then
  tokens = capacity
  at = now
end
if now > at then
  tokens = math.min(capacity, tokens + (now - at) * rate)
  at = now
end
local wait = 0
if tokens >= 1 then
  tokens = tokens - 1
else
  wait = (1 - tokens) / rate
end
redis.call('HSET', KEYS[1], 'tokens', tostring(tokens), 'at', tostring(at))
redis.call('EXPIRE', KEYS[1], math.ceil(capacity / rate) + 60)
return tostring(wait)
"""

BUCKET_KEY = "newsletter:send-rate"


class SendRateLimiter:
    """Block until the shared bucket gives one message's token; a rate of 0 means no cap."""

    def __init__(self, client: redis.Redis, rate: float, key: str = BUCKET_KEY) -> None:
        self.rate = float(rate)
        # A burst of at most one second's worth, as SEND_RATE promises (at least one message).
        self.capacity = max(self.rate, 1.0)
        self.key = key
        self._script = client.register_script(_TAKE) if self.rate > 0 else None

    def wait(self, should_stop: object = None) -> None:
        """Take one token, sleeping while the bucket is empty."""
        if self._script is None:
            return
        while True:
            args = [self.rate, self.capacity, time.time()]
            wait = float(self._script(keys=[self.key], args=args))
            if wait <= 0:
                return
            # The token was not taken: sleep until one should be there, then ask again.
            time.sleep(min(wait, 1.0))
            if callable(should_stop) and should_stop():
                raise InterruptedError("stop requested while waiting for the send rate")


STREAK_KEY = "newsletter:send-failures:{issue}"


class SharedStreak:
    """SEND_PAUSE_AFTER's count of consecutive failures, shared by every worker through Redis.

    A failure is an INCR. A success ends the streak with a DEL, but only when one may be
    running: after this worker saw a failure, and otherwise at most every ``reset_every``
    seconds (another worker's failures), so a steady send never touches Redis per message.
    While Redis does not answer, this worker counts its own failures instead: a send must
    not crash, nor go on failing for ever, because the counter is away.
    """

    def __init__(self, client: redis.Redis, reset_every: float = 0.5, ttl: int = 86400) -> None:
        self.client = client
        self.reset_every = reset_every
        self.ttl = ttl
        self._dirty: set[int] = set()
        self._reset_at: dict[int, float] = {}
        self._local: dict[int, int] = {}

    def failed(self, issue_id: int) -> int:
        """Count one failure; return the streak across all workers."""
        key = STREAK_KEY.format(issue=issue_id)
        self._local[issue_id] = self._local.get(issue_id, 0) + 1
        self._dirty.add(issue_id)
        try:
            pipe = self.client.pipeline()
            pipe.incr(key)
            pipe.expire(key, self.ttl)
            count, _ = pipe.execute()
        except redis.RedisError:
            return self._local[issue_id]
        return int(count)

    def succeeded(self, issue_id: int) -> None:
        """End the streak (cheap: usually no Redis call at all)."""
        self._local.pop(issue_id, None)
        now = time.monotonic()
        if issue_id in self._dirty or now - self._reset_at.get(issue_id, 0.0) >= self.reset_every:
            self._reset_at[issue_id] = now
            try:
                self.client.delete(STREAK_KEY.format(issue=issue_id))
            except redis.RedisError:
                return  # try again at the next success
            self._dirty.discard(issue_id)

    def clear(self, issue_id: int) -> None:
        """Forget the streak (the issue was paused)."""
        self._local.pop(issue_id, None)
        try:
            self.client.delete(STREAK_KEY.format(issue=issue_id))
        except redis.RedisError:
            return
        self._dirty.discard(issue_id)
