"""Proof of work past the sign-up limit: ALTCHA challenges, made and checked here, solved by
the visitor's browser (``/proof-of-work.js``). No third party is asked anything.

A challenge is signed with the app's secret and expires; each solved one is accepted once
(its signature is remembered in Redis until it would have expired anyway).
"""

from __future__ import annotations

import base64
import binascii
import json
import logging
from datetime import UTC, datetime, timedelta
from typing import Any, Final, cast

import redis
from altcha.v1 import ChallengeOptions, create_challenge
from altcha.v1 import verify_solution as verify_solution_v1

log = logging.getLogger(__name__)

ALGORITHM: Final = "SHA-256"
# The browser tries up to this many numbers, half of them on average: about a second on a
# phone. Enough to make each sign-up past the limit cost a machine real work, little to a
# person who is asked once.
MAX_NUMBER = 100_000
VALID_FOR = timedelta(minutes=10)
# A payload is a few hundred bytes; anything much longer is not ours.
MAX_PAYLOAD = 2000
_USED = "pow:used:"


def challenge(secret: str, now: datetime | None = None) -> dict[str, object]:
    """Return a fresh signed challenge as the browser's script wants it (JSON-able)."""
    now = now or datetime.now(UTC)
    made = create_challenge(
        ChallengeOptions(
            algorithm=ALGORITHM,
            max_number=MAX_NUMBER,
            hmac_key=_key(secret),
            expires=now + VALID_FOR,
        )
    )
    return dict(made.to_dict())


def _key(secret: str) -> str:
    # Not the raw SECRET_KEY: a key of its own for this one purpose.
    return "newsletter.proof-of-work.v1:" + secret


def solved(client: redis.Redis, payload: str, secrets: list[str]) -> bool:
    """Say whether ``payload`` solves a challenge of ours that is current and not used before.

    ``secrets`` are the current key and its fallbacks. A solution counts once: a second use,
    even from another client, is refused.
    """
    if not payload or len(payload) > MAX_PAYLOAD:
        return False
    try:
        fields = json.loads(base64.b64decode(payload, validate=True))
    except (ValueError, binascii.Error, UnicodeDecodeError):
        return False
    if not isinstance(fields, dict) or fields.get("algorithm") != ALGORITHM:
        return False
    number = fields.get("number")
    if not isinstance(number, int) or isinstance(number, bool) or not 0 <= number <= MAX_NUMBER:
        return False
    if not all(isinstance(fields.get(k), str) for k in ("challenge", "salt", "signature")):
        return False
    if "expires=" not in fields["salt"]:
        return False  # ours always expire; one that does not was not made here
    if not any(verify_solution_v1(cast(Any, fields), _key(s), True)[0] for s in secrets):
        return False
    try:
        first = client.set(
            _USED + fields["signature"], 1, nx=True, ex=VALID_FOR + timedelta(minutes=1)
        )
    except redis.RedisError:
        # Redis is down: the limit that asked for this proof could not be counted either.
        log.warning("proof of work accepted unchecked for replay: Redis did not answer")
        return True
    return bool(first)
