"""DKIM signing of raw message bytes when DKIM_DOMAIN, DKIM_SELECTOR, DKIM_PRIVATE_KEY are set."""

from __future__ import annotations

from typing import Any

import dkim

from newsletter.config import Settings

DKIM_HEADERS = (
    b"from",
    b"to",
    b"subject",
    b"date",
    b"message-id",
    b"list-unsubscribe",
    b"list-unsubscribe-post",
    b"list-id",
    b"mime-version",
    b"content-type",
)


def dkim_signer(settings: Settings) -> Any:
    """Return a function that DKIM-signs raw message bytes, or None when DKIM is off."""
    if not settings.dkim_private_key:
        return None

    # load_settings has all three or none.
    selector = str(settings.dkim_selector).encode()
    domain = str(settings.dkim_domain).encode()
    key = settings.dkim_private_key.encode()

    def sign(data: bytes) -> bytes:
        present = {
            line.split(b":", 1)[0].strip().lower()
            for line in data.split(b"\r\n\r\n", 1)[0].split(b"\r\n")
            if b":" in line
        }
        include = [h for h in DKIM_HEADERS if h in present]
        signature: bytes = dkim.sign(
            data, selector, domain, key, include_headers=include, linesep=b"\r\n"
        )
        return signature + data

    return sign
