"""Post one webhook delivery: signed, no redirects followed, every answer recorded on its row."""

from __future__ import annotations

import http.client
import socket
import ssl
import threading
import time
from collections.abc import Collection
from dataclasses import dataclass
from urllib.parse import urlsplit

from sqlalchemy.orm import Session

from newsletter.models import Webhook, WebhookDelivery, WebhookDeliveryStatus, utcnow
from newsletter.webhooks.address import IPAddress, Refused, checked_addresses
from newsletter.webhooks.events import sign

MAX_ATTEMPTS = 6
# The whole try, name lookup + connect + TLS handshake + send + the full answer, not each
# socket read: a receiver that drips a byte at a time is cut off here, and a worker is never
# held longer.
DEADLINE = 10.0
USER_AGENT = "TipOfTheWeek-Webhooks/1"
MAX_ANSWER = 65536
# What the delivery log says. Coarse on purpose: a raw socket error would tell whoever
# registered the URL which ports are open behind it.
TIMED_OUT = "timed out"
NOT_ALLOWED = "refused: address not allowed"
NO_CONNECTION = "could not connect"


@dataclass(frozen=True)
class Attempt:
    """What one try did: ``outcome`` for the log, ``retry`` the attempts so far when to retry."""

    outcome: str
    retry: int | None = None


def backoff(attempt: int, base: float) -> float:
    """Return the wait before retry number ``attempt`` (1-based): base, 4×base, 16×base …"""
    return base * (4.0 ** (attempt - 1))


class Failed(Exception):
    """A try got no HTTP answer; the message is the coarse reason the log shows."""


class _Deadline:
    """Shut a connection's socket when the time is up, whichever call it is blocked in."""

    def __init__(self, seconds: float) -> None:
        self.end = time.monotonic() + seconds
        self.passed = False
        self._sock: socket.socket | None = None
        self._lock = threading.Lock()
        self._timer = threading.Timer(seconds, self._expire)
        self._timer.daemon = True
        self._timer.start()

    def left(self) -> float:
        """Return the seconds left, raising TimeoutError once there are none."""
        left = self.end - time.monotonic()
        if left <= 0:
            self.passed = True
            raise TimeoutError(TIMED_OUT)
        return left

    def watch(self, sock: socket.socket) -> None:
        with self._lock:
            self._sock = sock
            if self.passed:
                self._shut()

    def _expire(self) -> None:
        with self._lock:
            self.passed = True
            self._shut()

    def _shut(self) -> None:
        if self._sock is not None:
            try:
                # The plain socket's shutdown, even for TLS: it wakes a blocked recv at once.
                socket.socket.shutdown(self._sock, socket.SHUT_RDWR)
            except OSError:
                pass

    def cancel(self) -> None:
        self._timer.cancel()


class _PinnedHTTP(http.client.HTTPConnection):
    """Connect to the checked address; the Host header still names the URL's host."""

    def __init__(
        self, host: str, port: int, addresses: list[IPAddress], deadline: _Deadline
    ) -> None:
        super().__init__(host, port, timeout=deadline.left())
        self.addresses = addresses
        self.deadline = deadline

    def _open(self) -> socket.socket:
        # Only the addresses that were checked, in the resolver's order (``localhost`` may
        # answer ::1 first for a receiver listening on 127.0.0.1 alone).
        error: OSError = OSError(NO_CONNECTION)
        for address in self.addresses:
            try:
                sock = socket.create_connection((str(address), self.port), self.deadline.left())
            except OSError as exc:
                error = exc
                continue
            self.deadline.watch(sock)
            return sock
        raise error

    def connect(self) -> None:
        self.sock = self._open()


class _PinnedHTTPS(_PinnedHTTP):
    """As ``_PinnedHTTP``, with TLS whose SNI and certificate check use the URL's host."""

    def connect(self) -> None:
        context = ssl.create_default_context()
        sock = context.wrap_socket(
            self._open(), server_hostname=self.host, do_handshake_on_connect=False
        )
        # The TLS socket took over the plain one's descriptor: watch it before the handshake,
        # so a receiver that stalls or drips its answer to the ClientHello is cut off too.
        self.deadline.watch(sock)
        sock.settimeout(self.deadline.left())
        sock.do_handshake()
        self.sock = sock


def _post(
    url: str, body: bytes, headers: dict[str, str], allow: Collection[str], deadline: _Deadline
) -> int:
    """POST to a checked address of the URL's host within the deadline; return the status."""
    # The lookup counts against the deadline too: a resolver that never answers is a timeout.
    host, port, addresses = checked_addresses(url, allow, timeout=deadline.left())
    parts = urlsplit(url)
    path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    kind = _PinnedHTTPS if parts.scheme == "https" else _PinnedHTTP
    conn = kind(host, port, addresses, deadline)
    try:
        conn.request("POST", path, body=body, headers=headers)
        # Redirects are not followed: a 3xx is an answer like any other non-2xx.
        resp = conn.getresponse()
        resp.read(MAX_ANSWER)
        return int(resp.status)
    finally:
        conn.close()


def post(url: str, body: bytes, headers: dict[str, str], allow: Collection[str] = ()) -> int:
    """POST a body within ``DEADLINE`` seconds; return the status or raise ``Failed``."""
    deadline = _Deadline(DEADLINE)
    try:
        return _post(url, body, headers, allow, deadline)
    except Refused:
        raise Failed(NOT_ALLOWED) from None
    except Exception as exc:  # DNS, refused, reset, TLS, a bad answer: all worth a retry
        if deadline.passed or isinstance(exc, TimeoutError):
            raise Failed(TIMED_OUT) from None
        raise Failed(NO_CONNECTION) from None
    finally:
        deadline.cancel()


def attempt(session: Session, delivery_id: int, allow: Collection[str] = ()) -> Attempt:
    """POST one pending delivery and record the answer; say whether to try again."""
    row = session.get(WebhookDelivery, delivery_id)
    if row is None or row.status != WebhookDeliveryStatus.PENDING:
        return Attempt("skipped")
    hook = session.get(Webhook, row.webhook_id)
    if hook is None or not hook.active:
        row.status = WebhookDeliveryStatus.FAILED
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
    url = hook.url
    # No transaction stays open through the post: on SQLite each one holds the database's
    # write lock from its first read (BEGIN IMMEDIATE), so a slow receiver would hold up
    # every sign-up and every copy of a send for the whole deadline.
    session.commit()
    error = ""
    code: int | None = None
    try:
        code = post(url, body, headers, allow)
        if not 200 <= code < 300:
            error = f"HTTP {code}"
    except Failed as exc:
        error = str(exc)
    row = session.get(WebhookDelivery, delivery_id)
    if row is None or row.status != WebhookDeliveryStatus.PENDING:
        return Attempt("skipped")  # erased, or recorded by another try meanwhile
    row.attempts += 1
    row.response_code = code
    row.last_error = error
    if not error:
        row.status = WebhookDeliveryStatus.OK
        row.delivered_at = utcnow()
        session.commit()
        return Attempt("delivered")
    if row.attempts >= MAX_ATTEMPTS:
        row.status = WebhookDeliveryStatus.FAILED
        session.commit()
        return Attempt("failed for good")
    session.commit()
    return Attempt(f"retry scheduled: {error}", retry=row.attempts)
