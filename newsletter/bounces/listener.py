"""An SMTP listener for the bounce address: what `newsletter bounces serve` runs behind an MX.

It accepts RCPT only for the bounce address and its ``+tag`` forms (every other recipient
gets 550 5.1.1, so it can never become an open relay or a catch-all), at most
``MAX_RECIPIENTS`` of them per transaction (452 4.5.3 past that: the sending MTA sends the
rest in another transaction), caps the message size (552 5.3.4), and hands each message to
``take`` once with its accepted recipients: it is parsed once, and each envelope recipient
is the VERP address that names a copy. If ``take`` fails (the database is away) the sender
gets 451 and keeps the mail to try again later.
"""

from __future__ import annotations

import asyncio
import logging
import socket
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP

from newsletter.models import MAX_EMAIL_LENGTH

log = logging.getLogger(__name__)

Take = Callable[[bytes, list[str]], list[str]]

# Recipients per transaction. A bounce names one copy; a sending MTA batches a few at most,
# and a 452 for the rest only makes it send them in another transaction (RFC 5321 4.5.3.1.10).
MAX_RECIPIENTS = 100
TOO_MANY = "452 4.5.3 Too many recipients"


def accepts(address: str, bounce_address: str) -> bool:
    """Return whether ``address`` is the bounce address or one of its ``+tag`` forms."""
    local, _, domain = address.strip().strip("<>").rpartition("@")
    base_local, _, base_domain = bounce_address.rpartition("@")
    if not local or domain.lower() != base_domain.lower():
        return False
    local, base_local = local.lower(), base_local.lower()
    return local == base_local or local.startswith(base_local + "+")


class BounceHandler:
    """aiosmtpd hooks: refuse other recipients, record each message through ``take``."""

    def __init__(self, take: Take, bounce_address: str, threads: int = 4) -> None:
        self.take = take
        self.bounce_address = bounce_address
        # Recording talks to the database, which would stall the event loop: it runs on
        # threads of its own, so one slow commit holds up no other session.
        self.pool = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="bounce-take")

    async def handle_RCPT(
        self, server: Any, session: Any, envelope: Any, address: str, options: list[str]
    ) -> str:
        if not accepts(address, self.bounce_address):
            return f"550 5.1.1 <{address[:MAX_EMAIL_LENGTH]}>: no such mailbox here"
        if address in envelope.rcpt_tos:
            return "250 2.1.5 OK"  # the same copy named twice is recorded once
        if len(envelope.rcpt_tos) >= MAX_RECIPIENTS:
            return TOO_MANY
        envelope.rcpt_tos.append(address)
        return "250 2.1.5 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        raw = envelope.original_content or envelope.content
        data = raw if isinstance(raw, bytes) else str(raw).encode("utf-8", errors="replace")
        loop = asyncio.get_running_loop()
        try:
            lines = await loop.run_in_executor(self.pool, self.take, data, list(envelope.rcpt_tos))
        except Exception as exc:
            log.warning("could not record a notification: %s", exc)
            return "451 4.3.0 Cannot record it just now; please try again later"
        for line in lines:
            log.info("bounce listener: %s", line)
        return "250 2.0.0 OK"


class _BounceSMTP(SMTP):
    async def push(self, status: Any) -> None:
        # aiosmtpd's size refusals carry no enhanced code; a sending MTA reads 5.3.4 best.
        if isinstance(status, str) and status.startswith("552 Error"):
            status = "552 5.3.4 Message too big for this system"
        await super().push(status)


class BounceController(Controller):
    """aiosmtpd's threaded controller, serving the bounce address with a size cap."""

    def factory(self) -> SMTP:
        return _BounceSMTP(self.handler, **self.SMTP_kwargs)


def start_listener(
    take: Take, bounce_address: str, host: str, port: int, max_size: int
) -> BounceController:
    """Start listening on ``host:port`` in a background thread; stop it with ``.stop()``."""
    controller = BounceController(
        BounceHandler(take, bounce_address),
        hostname=host,
        port=port,
        server_hostname=socket.gethostname(),  # getfqdn() would ask DNS at start-up
        data_size_limit=max_size,
        enable_SMTPUTF8=True,
        ident="newsletter bounces",
    )
    controller.start()
    return controller
