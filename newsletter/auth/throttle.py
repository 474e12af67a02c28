"""Login throttling in Redis: failures counted per account and per client address, or per
known device (a browser that logged in to the account before)."""

from __future__ import annotations

import math
from dataclasses import dataclass

from flask import has_request_context, request

from newsletter.auth.devices import known_device
from newsletter.auth.passwords import account_hash
from newsletter.extensions import get_redis

ACCOUNT_LIMIT = 5  # failures per account (or per known device) within the window
IP_LIMIT = 20  # failures per client address within the window (many editors may share a NAT)
WINDOW_SECONDS = 15 * 60

# Check every limit and, only when none is reached, count the attempt against all of them, in
# one step: concurrent guesses cannot all pass the check before any of them is counted. The
# window starts at the first attempt (a fixed window). Returns {0, 0}, or {1, ttl} if blocked.
_RESERVE = """
local window = tonumber(ARGV[#ARGV])
for i, key in ipairs(KEYS) do
    if tonumber(redis.call('GET', key) or '0') >= tonumber(ARGV[i]) then
        return {1, redis.call('TTL', key)}
    end
end
for _, key in ipairs(KEYS) do
    if redis.call('INCR', key) == 1 then
        redis.call('EXPIRE', key, window)
    end
end
return {0, 0}
"""
# Give back one counted attempt that turned out good, never going below zero or creating a key.
_RELEASE = """
local n = tonumber(redis.call('GET', KEYS[1]) or '0')
if n > 0 then
    return redis.call('DECR', KEYS[1])
end
return 0
"""
_ATTEMPT = "newsletter.login_attempt"  # what this request counted, in request.environ


# --- throttling ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Blocked:
    retry_after: int  # seconds

    @property
    def minutes(self) -> int:
        return max(1, math.ceil(self.retry_after / 60))


@dataclass(frozen=True)
class _Attempt:
    keys: list[tuple[str, int]]
    device: bool  # counted against a known device instead of the account and the address


def _attempt(email: str, ip: str) -> _Attempt:
    account_limit = ACCOUNT_LIMIT
    device = known_device(email) if has_request_context() else None
    if device is not None:
        # A stranger's failures block the account, not the browsers its owner logged in from.
        return _Attempt([(f"login-fail:device:{device}", account_limit)], device=True)
    return _Attempt(
        [
            (f"login-fail:acct:{account_hash(email)}", account_limit),
            (f"login-fail:ip:{ip}", IP_LIMIT),
        ],
        device=False,
    )


def login_blocked(email: str, ip: str) -> Blocked | None:
    """Count this login attempt, or return how long to wait when a limit is already reached.

    The attempt counts as a failure until ``clear_failures`` says it succeeded.
    """
    attempt = _attempt(email, ip)
    window = WINDOW_SECONDS
    script = get_redis().register_script(_RESERVE)
    blocked, ttl = script(
        keys=[key for key, _ in attempt.keys],
        args=[limit for _, limit in attempt.keys] + [window],
    )
    if blocked:
        return Blocked(retry_after=int(ttl) if int(ttl) > 0 else window)
    if has_request_context():
        request.environ[_ATTEMPT] = attempt
    return None


def record_failure(email: str, ip: str) -> None:
    """Count a failed login (already done when ``login_blocked`` let this request try)."""
    if has_request_context() and request.environ.pop(_ATTEMPT, None) is not None:
        return
    window = WINDOW_SECONDS
    pipe = get_redis().pipeline()
    for key, _limit in _attempt(email, ip).keys:
        pipe.set(key, 0, ex=window, nx=True)
        pipe.incr(key)
    pipe.execute()


def clear_failures(email: str) -> None:
    """Forget the failures behind a good login: the account's, or the known device's.

    The address keeps its earlier failures; only this attempt is given back.
    """
    attempt = request.environ.pop(_ATTEMPT, None) if has_request_context() else None
    client = get_redis()
    if attempt is None:
        client.delete(f"login-fail:acct:{account_hash(email)}")
        return
    if attempt.device:
        # The account stays blocked for everyone else until its window ends.
        client.delete(attempt.keys[0][0])
        return
    account_key, ip_key = attempt.keys[0][0], attempt.keys[1][0]
    client.delete(account_key)
    client.register_script(_RELEASE)(keys=[ip_key])
