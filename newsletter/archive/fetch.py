"""Fetch a feed or an export over HTTP(S) under the webhooks' rules: public addresses only.

Every hop of a redirect is resolved and checked like a webhook's URL (``webhooks.address``):
a blog whose feed redirects to 127.0.0.1, a private network or a cloud's metadata service is
refused, and the connection goes to the very address that was checked. The answer is read up
to a size limit and within a deadline; it is never decompressed (no gzip is asked for), so a
small answer cannot inflate. A conditional GET (ETag, Last-Modified) that comes back 304
costs one request and nothing else.
"""

from __future__ import annotations

import http.client
import time
from collections.abc import Collection
from dataclasses import dataclass
from urllib.parse import urljoin, urlsplit

from newsletter.webhooks.address import Refused, checked_addresses
from newsletter.webhooks.pinned import pinned

DEADLINE = 30.0
MAX_REDIRECTS = 5
CHUNK = 64 * 1024
USER_AGENT = "TipOfTheWeek-Feed/1 (+the newsletter's back catalogue)"
_REDIRECTS = (301, 302, 303, 307, 308)


class FetchError(Exception):
    """The URL could not be fetched; the message says why, for the editor or the log."""


@dataclass(frozen=True)
class Fetched:
    status: int  # 200, or 304 when the conditional GET found nothing new
    body: bytes = b""
    etag: str = ""
    last_modified: str = ""
    url: str = ""  # after redirects


def _left(end: float) -> float:
    left = end - time.monotonic()
    if left <= 0:
        raise FetchError(f"no complete answer within {DEADLINE:.0f} seconds")
    return left


def _get(
    url: str, headers: dict[str, str], allow: Collection[str], end: float
) -> tuple[http.client.HTTPConnection, http.client.HTTPResponse]:
    try:
        host, port, addresses = checked_addresses(url, allow, timeout=_left(end))
    except Refused as exc:
        # The webhooks' words, with this feature's own setting to allow an intranet host.
        reason = str(exc).replace("webhooks may not be sent there", "refused")
        raise FetchError(reason.replace("WEBHOOK_ALLOW_HOSTS", "FEED_ALLOW_HOSTS")) from None
    except OSError:
        raise FetchError(f"{urlsplit(url).hostname} does not resolve to an address") from None
    parts = urlsplit(url)
    path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    conn = pinned(parts.scheme, host, port, addresses, min(_left(end), 15.0))
    try:
        conn.request("GET", path, headers=headers)
        return conn, conn.getresponse()
    except (OSError, http.client.HTTPException) as exc:
        conn.close()
        raise FetchError(f"could not fetch {url}: {exc.__class__.__name__}: {exc}") from None


def _read(resp: http.client.HTTPResponse, max_bytes: int, end: float) -> bytes:
    length = resp.getheader("Content-Length", "")
    if length.isdigit() and int(length) > max_bytes:
        raise FetchError(f"the answer is {int(length) >> 20} MB, more than the limit")
    chunks: list[bytes] = []
    size = 0
    try:
        while True:
            _left(end)
            chunk = resp.read1(CHUNK)
            if not chunk:
                break
            size += len(chunk)
            if size > max_bytes:
                raise FetchError(f"the answer is larger than {max_bytes >> 20} MB")
            chunks.append(chunk)
    except (OSError, http.client.HTTPException) as exc:
        raise FetchError(f"the answer was cut off: {exc}") from None
    return b"".join(chunks)


def fetch(
    url: str,
    *,
    allow: Collection[str] = (),
    max_bytes: int,
    etag: str = "",
    last_modified: str = "",
) -> Fetched:
    """GET ``url``, following up to five checked redirects; raise FetchError when it fails."""
    end = time.monotonic() + DEADLINE
    headers = {"User-Agent": USER_AGENT, "Accept-Encoding": "identity", "Accept": "*/*"}
    if etag:
        headers["If-None-Match"] = etag
    if last_modified:
        headers["If-Modified-Since"] = last_modified
    for _hop in range(MAX_REDIRECTS + 1):
        conn, resp = _get(url, headers, allow, end)
        try:
            if resp.status in _REDIRECTS:
                location = resp.getheader("Location", "")
                if not location:
                    raise FetchError(f"HTTP {resp.status} without a Location")
                url = urljoin(url, location)
                continue
            if resp.status == 304:
                return Fetched(304, etag=etag, last_modified=last_modified, url=url)
            if resp.status != 200:
                raise FetchError(f"HTTP {resp.status} {resp.reason}".strip())
            body = _read(resp, max_bytes, end)
            return Fetched(
                200,
                body,
                etag=resp.getheader("ETag", "")[:300],
                last_modified=resp.getheader("Last-Modified", "")[:100],
                url=url,
            )
        finally:
            resp.close()
            conn.close()
    raise FetchError(f"more than {MAX_REDIRECTS} redirects")
