"""Check an issue's links in a job: HEAD, then GET when HEAD is not answered well.

The webhooks' address rules apply (``webhooks.address``): a link to a loopback, private,
link-local or metadata address is never fetched (an operator allows an intranet host with
WEBHOOK_ALLOW_HOSTS), and the connection goes to the very address that was checked. Each link
has a short deadline; the results wait in Redis for the issue page's poll, under a key that
names the set of links, so an edited body is checked afresh.
"""

from __future__ import annotations

import hashlib
import http.client
import json
from collections.abc import Collection, Sequence
from typing import Any
from urllib.parse import urlsplit

import redis

from newsletter.extensions import get_redis, settings
from newsletter.tasks.queues import DEFAULT_QUEUE, enqueue, job, name_job
from newsletter.webhooks.address import Refused, checked_addresses
from newsletter.webhooks.pinned import pinned

LINK_TIMEOUT = 5.0  # seconds per request: a slow site is named, never waited on for long
RESULTS_TTL = 3600
KEY = "newsletter:links:{digest}"
USER_AGENT = "TipOfTheWeek-LinkCheck/1"
_RETRY_WITH_GET = frozenset({403, 404, 405, 501})  # some servers refuse HEAD alone


def _ask(method: str, url: str, allow: Collection[str]) -> int:
    host, port, addresses = checked_addresses(url, allow, timeout=LINK_TIMEOUT)
    parts = urlsplit(url)
    path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    conn = pinned(parts.scheme, host, port, addresses, LINK_TIMEOUT)
    try:
        conn.request(method, path, headers={"User-Agent": USER_AGENT, "Accept": "*/*"})
        resp = conn.getresponse()
        resp.read(1024) if method == "GET" else None
        return int(resp.status)
    finally:
        conn.close()


def check_link(url: str, allow: Collection[str] = ()) -> dict[str, Any]:
    """Return what ``url`` answers: ``{"url", "status", "ok", "error"}``; redirects count as ok."""
    try:
        status = _ask("HEAD", url, allow)
        if status in _RETRY_WITH_GET or status >= 500:
            status = _ask("GET", url, allow)
    except Refused:
        return {"url": url, "status": None, "ok": False, "error": "not checked: internal address"}
    except TimeoutError:
        return {"url": url, "status": None, "ok": False, "error": "no answer in time"}
    except (OSError, http.client.HTTPException):
        return {"url": url, "status": None, "ok": False, "error": "could not connect"}
    return {"url": url, "status": status, "ok": status < 400, "error": ""}


def digest(links: Sequence[str]) -> str:
    """Name a set of links: the same links, the same results."""
    return hashlib.sha256("\n".join(sorted(links)).encode()).hexdigest()[:32]


@job(queue=DEFAULT_QUEUE, timeout=600, unique=True, name=lambda key: f"links-{key}")
def check_links(key: str, links: list[str]) -> str:
    """Check every link and store the results for the page's poll."""
    allow = settings().webhook_allow_hosts
    results = [check_link(url, allow) for url in links]
    get_redis().set(
        KEY.format(digest=key), json.dumps({"state": "done", "links": results}), ex=RESULTS_TTL
    )
    broken = sum(1 for r in results if not r["ok"])
    return f"{len(results)} links, {broken} not answering"


def link_results(links: Sequence[str]) -> dict[str, Any]:
    """Return the results for ``links`` if checked; queue the check if nobody has yet.

    ``state`` is ``done`` (with ``links``), ``checking``, or ``unavailable`` (Redis down).
    """
    if not links:
        return {"state": "done", "links": []}
    key = digest(links)
    try:
        client = get_redis()
        found = client.get(KEY.format(digest=key))
        if found:
            result: dict[str, Any] = json.loads(found)
            return result
        if client.set(KEY.format(digest=key), json.dumps({"state": "checking"}), nx=True, ex=600):
            enqueue(check_links, key, list(links), job_id=name_job(check_links, key))
    except redis.RedisError:
        return {"state": "unavailable", "links": []}
    return {"state": "checking", "links": []}


def broken_links(links: Sequence[str]) -> list[dict[str, Any]] | None:
    """Return the links found broken, or None while they are still being checked."""
    found = link_results(links)
    if found["state"] != "done":
        return None
    return [r for r in found["links"] if not r["ok"]]
