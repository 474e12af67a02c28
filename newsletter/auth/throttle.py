"""Login throttling in Redis: failures counted per account and per client address."""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass

from flask import current_app

from newsletter.auth.passwords import normalize_login
from newsletter.extensions import get_redis

ACCOUNT_LIMIT = 5  # failures per account within the window
IP_LIMIT = 20  # failures per client address within the window (many editors may share a NAT)
WINDOW_SECONDS = 15 * 60


# --- throttling ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Blocked:
    retry_after: int  # seconds

    @property
    def minutes(self) -> int:
        return max(1, math.ceil(self.retry_after / 60))


def _keys(email: str, ip: str) -> list[tuple[str, int]]:
    account = hashlib.sha256(normalize_login(email).encode()).hexdigest()[:32]
    limits = current_app.config
    return [
        (f"login-fail:acct:{account}", int(limits.get("LOGIN_ACCOUNT_LIMIT", ACCOUNT_LIMIT))),
        (f"login-fail:ip:{ip}", int(limits.get("LOGIN_IP_LIMIT", IP_LIMIT))),
    ]


def login_blocked(email: str, ip: str) -> Blocked | None:
    """Return how long to wait when this account or this address failed too often, else None."""
    client = get_redis()
    for key, limit in _keys(email, ip):
        count = client.get(key)
        if count is not None and int(count) >= limit:
            ttl = client.ttl(key)
            return Blocked(retry_after=ttl if ttl and ttl > 0 else WINDOW_SECONDS)
    return None


def record_failure(email: str, ip: str) -> None:
    """Count a failed login against both the account and the client address."""
    window = int(current_app.config.get("LOGIN_WINDOW", WINDOW_SECONDS))
    pipe = get_redis().pipeline()
    for key, _limit in _keys(email, ip):
        # The window starts at the first failure (fixed window; works on any Redis version).
        pipe.set(key, 0, ex=window, nx=True)
        pipe.incr(key)
    pipe.execute()


def clear_failures(email: str) -> None:
    """Forget an account's failures after a good login (the address's count stays)."""
    get_redis().delete(_keys(email, "-")[0][0])
