"""VERP: each copy's envelope sender names that copy, signed, so a bounce says whose it is.

With ``BOUNCE_ADDRESS=bounces@example.org`` the copy with delivery id 1234 goes out from
``bounces+d1234-<mac>@example.org``. A bounce comes back *to* that address, so its envelope
recipient alone tells which copy failed, whatever the bounce's format. The MAC (HMAC-SHA256
of the id under SECRET_KEY, 10 hex digits, 40 bits) makes a tag nobody can forge: a bounce
for a made-up tag changes nothing.
"""

from __future__ import annotations

import hashlib
import hmac
import re

_TAG = re.compile(r"d([0-9]{1,12})-([0-9a-f]{10})")


def _mac(secret: bytes, delivery_id: int) -> str:
    return hmac.new(secret, f"verp:{delivery_id}".encode(), hashlib.sha256).hexdigest()[:10]


def verp_address(bounce_address: str, delivery_id: int, secret: bytes) -> str:
    """Return the envelope sender for one copy: ``local+<tag>@domain``."""
    local, _, domain = bounce_address.rpartition("@")
    return f"{local}+d{delivery_id}-{_mac(secret, delivery_id)}@{domain}"


def read_tag(address: str, bounce_address: str, secrets: list[bytes]) -> int | None:
    """Return the delivery id a VERP address names, or None if it is not one of ours.

    ``secrets`` are the current key and the fallbacks still accepted (key rotation): a copy
    sent before a rotation can still bounce after it.
    """
    local, _, domain = address.strip().strip("<>").rpartition("@")
    base_local, _, base_domain = bounce_address.rpartition("@")
    if domain.lower() != base_domain.lower():
        return None
    prefix = base_local.lower() + "+"
    if not local.lower().startswith(prefix):
        return None
    found = _TAG.fullmatch(local[len(prefix) :].lower())
    if found is None:
        return None
    delivery_id = int(found.group(1))
    for secret in secrets:
        if hmac.compare_digest(_mac(secret, delivery_id), found.group(2)):
            return delivery_id
    return None
