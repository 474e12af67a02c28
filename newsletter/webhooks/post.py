"""Post one webhook delivery: signed, no redirects followed, every answer recorded on its row."""

from __future__ import annotations

import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from typing import Any

from sqlalchemy.orm import Session

from newsletter.models import Webhook, WebhookDelivery, utcnow
from newsletter.webhooks.events import sign

MAX_ATTEMPTS = 6
TIMEOUT = 10
USER_AGENT = "TipOfTheWeek-Webhooks/1"


@dataclass(frozen=True)
class Attempt:
    """What one try did: ``outcome`` for the log, ``retry`` the attempts so far when to retry."""

    outcome: str
    retry: int | None = None


def backoff(attempt: int, base: float) -> float:
    """Return the wait before retry number ``attempt`` (1-based): base, 4×base, 16×base …"""
    return base * (4.0 ** (attempt - 1))


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


def _post(url: str, body: bytes, headers: dict[str, str]) -> int:
    opener = urllib.request.build_opener(_NoRedirect)
    req = urllib.request.Request(url, data=body, headers=headers, method="POST")
    try:
        with opener.open(req, timeout=TIMEOUT) as resp:
            resp.read(65536)
            return int(resp.status)
    except urllib.error.HTTPError as exc:
        exc.close()
        return int(exc.code)


def attempt(session: Session, delivery_id: int) -> Attempt:
    """POST one pending delivery and record the answer; say whether to try again."""
    row = session.get(WebhookDelivery, delivery_id)
    if row is None or row.status != "pending":
        return Attempt("skipped")
    hook = session.get(Webhook, row.webhook_id)
    if hook is None or not hook.active:
        row.status = "failed"
        row.last_error = "webhook removed or disabled"
        session.commit()
        return Attempt("skipped")
    body = row.payload.encode("utf-8")
    headers = {
        "Content-Type": "application/json",
        "User-Agent": USER_AGENT,
        "X-Newsletter-Event": row.event,
        "X-Newsletter-Delivery": str(row.id),
        "X-Newsletter-Timestamp": str(int(time.time())),
        "X-Newsletter-Signature": sign(hook.secret, body),
    }
    row.attempts += 1
    error = ""
    code: int | None = None
    try:
        code = _post(hook.url, body, headers)
        if not 200 <= code < 300:
            error = f"HTTP {code}"
    except Exception as exc:  # DNS, refused, timeout, TLS: all worth a retry
        error = f"{type(exc).__name__}: {exc}"[:300]
    row.response_code = code
    row.last_error = error
    if not error:
        row.status = "ok"
        row.delivered_at = utcnow()
        session.commit()
        return Attempt("delivered")
    if row.attempts >= MAX_ATTEMPTS:
        row.status = "failed"
        session.commit()
        return Attempt("failed for good")
    session.commit()
    return Attempt(f"retry scheduled: {error}", retry=row.attempts)
