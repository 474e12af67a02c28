"""An SMTP sink (aiosmtpd) that counts what it accepts and injects faults on demand."""

from __future__ import annotations

import asyncio
import email
import email.policy
import socket
import threading
import time
from collections import defaultdict, deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from aiosmtpd.controller import Controller


@dataclass(frozen=True)
class Accepted:
    rcpt: str
    message_id: str
    at: float
    raw: bytes
    mail_from: str = ""


class FaultHandler:
    """Per-recipient scripts of answers: '451', '550', '552', 'drop-rcpt', 'drop-data'.

    Each recipient's script is consumed one step per attempt; once empty, mail is accepted.
    A step may also be a whole answer to RCPT ("550 5.1.1 no such user") or, prefixed with
    "end ", the answer after the message's final dot ("end 554 5.7.1 looks like spam").
    ``ehlo_failures`` answers that many EHLO/HELO commands with 421 (a busy server at connect).
    ``mail_answer`` answers every MAIL FROM with that line (a relay refusing us), and
    ``end_answer`` every message's final dot.
    """

    def __init__(self) -> None:
        self.scripts: dict[str, deque[str]] = defaultdict(deque)
        self.accepted: list[Accepted] = []
        self.attempts: dict[str, int] = defaultdict(int)
        self.ehlo_failures = 0
        self.pipelining = False  # offer PIPELINING (RFC 2920) in the EHLO answer
        self.reject_all: str | None = None
        self.data_delay = 0.0  # seconds before answering DATA: a slow relay, not a rate cap
        self.mail_answer: str | None = None
        self.end_answer: str | None = None
        self.on_data_end: Callable[[], None] | None = None  # called as each copy's data ends
        self._lock = threading.Condition()

    def script(self, rcpt: str, *steps: str) -> None:
        self.scripts[rcpt].extend(steps)

    async def handle_EHLO(
        self, server: Any, session: Any, envelope: Any, hostname: str, responses: list[str]
    ) -> list[str]:  # noqa: E501
        if self.ehlo_failures > 0:
            self.ehlo_failures -= 1
            return ["421 too busy, try later"]
        session.host_name = hostname
        if self.pipelining:
            responses.insert(-1, "250-PIPELINING")
        return responses

    async def handle_HELO(self, server: Any, session: Any, envelope: Any, hostname: str) -> str:
        if self.ehlo_failures > 0:
            self.ehlo_failures -= 1
            return "421 too busy, try later"
        session.host_name = hostname
        return f"250 {server.hostname}"

    async def handle_MAIL(
        self, server: Any, session: Any, envelope: Any, address: str, options: list[str]
    ) -> str:
        if self.mail_answer:
            return self.mail_answer
        envelope.mail_from = address
        envelope.mail_options.extend(options)
        return "250 OK"

    async def handle_RCPT(
        self, server: Any, session: Any, envelope: Any, address: str, options: list[str]
    ) -> str:  # noqa: E501
        self.attempts[address] += 1
        if self.reject_all:
            return self.reject_all
        steps = self.scripts.get(address)
        step = steps[0] if steps else ""
        if step[:1].isdigit() and " " in step:
            steps.popleft()  # type: ignore[union-attr]
            return step
        if step in ("451", "550", "552", "drop-rcpt"):
            steps.popleft()  # type: ignore[union-attr]
            if step == "drop-rcpt":
                server.transport.close()
                return "421 closing"
            text = {"451": "try again later", "550": "no such user", "552": "mailbox full"}[step]
            return f"{step} {text}"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        if self.on_data_end is not None:
            self.on_data_end()
        data = envelope.original_content or envelope.content
        msg = email.message_from_bytes(data, policy=email.policy.default)
        rcpt = envelope.rcpt_tos[0]
        if self.data_delay:
            await asyncio.sleep(self.data_delay)
        steps = self.scripts.get(rcpt)
        if steps and steps[0].startswith("end "):
            return steps.popleft()[4:]
        if self.end_answer:
            return self.end_answer
        with self._lock:
            accepted = Accepted(rcpt, str(msg["Message-ID"]), time.time(), data, envelope.mail_from)
            self.accepted.append(accepted)
            self._lock.notify_all()
        steps = self.scripts.get(rcpt)
        if steps and steps[0] == "drop-data":
            steps.popleft()
            server.transport.close()  # the server has the mail, the client never hears so
            return "421 closing"
        return "250 OK"

    def wait_for(self, count: int, timeout: float = 20.0) -> list[Accepted]:
        deadline = time.monotonic() + timeout
        with self._lock:
            while len(self.accepted) < count:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(f"expected {count} mails, got {len(self.accepted)}")
                self._lock.wait(left)
            return list(self.accepted)

    def to(self, rcpt: str) -> list[Accepted]:
        with self._lock:
            return [a for a in self.accepted if a.rcpt == rcpt]


def start_sink(port: int) -> tuple[Controller, FaultHandler]:
    """Start a fault sink on 127.0.0.1:port; stop it with controller.stop()."""
    handler = FaultHandler()
    controller = Controller(handler, hostname="127.0.0.1", port=port, ready_timeout=10)
    controller.start()
    return controller, handler


class SilentServer:
    """A TCP server that accepts connections and never says a word (a hung mail server)."""

    def __init__(self, port: int) -> None:
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", port))
        self.sock.listen(16)
        self.port = port
        self.conns: list[socket.socket] = []
        self._thread = threading.Thread(target=self._accept, daemon=True)
        self._thread.start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.conns.append(conn)

    def close(self) -> None:
        for conn in self.conns:
            conn.close()
        self.sock.close()
