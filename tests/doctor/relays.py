"""SMTP relays for the doctor's tests: aiosmtpd with STARTTLS, TLS and AUTH, and a refuser."""

from __future__ import annotations

import socket
import threading
from typing import Any

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword

from tests.helpers import free_port
from tests.helpers.tls import Certificates

USERNAME, PASSWORD = "news", "the right password"


class Recorder:
    """Counts sessions and would-be mail: the doctor must open sessions and send nothing."""

    def __init__(self) -> None:
        self.ehlos = 0
        self.mail_from: list[str] = []

    async def handle_EHLO(
        self, server: Any, session: Any, envelope: Any, hostname: str, responses: list[str]
    ) -> list[str]:
        self.ehlos += 1
        session.host_name = hostname
        return responses

    async def handle_MAIL(
        self, server: Any, session: Any, envelope: Any, address: str, options: list[str]
    ) -> str:
        self.mail_from.append(address)
        envelope.mail_from = address
        return "250 OK"


def _authenticate(server: Any, session: Any, envelope: Any, mechanism: str, data: Any) -> Any:
    ok = (
        isinstance(data, LoginPassword)
        and data.login == USERNAME.encode()
        and data.password == PASSWORD.encode()
    )
    return AuthResult(success=ok, handled=False)


class Relay:
    """A real aiosmtpd relay on 127.0.0.1; ``starttls``, ``tls`` and ``auth`` as asked."""

    def __init__(
        self,
        certificates: Certificates | None = None,
        *,
        implicit_tls: bool = False,
        auth: bool = False,
    ) -> None:
        self.recorder = Recorder()
        self.port = free_port()
        options: dict[str, Any] = {}
        ssl_context = None
        if certificates is not None and implicit_tls:
            ssl_context = certificates.server_context()
        elif certificates is not None:
            options.update(tls_context=certificates.server_context(), require_starttls=True)
        if auth:
            options.update(authenticator=_authenticate, auth_require_tls=certificates is not None)
        self.controller = Controller(
            self.recorder,
            hostname="127.0.0.1",
            port=self.port,
            ssl_context=ssl_context,
            ready_timeout=10,
            **options,
        )
        self.controller.start()

    def stop(self) -> None:
        self.controller.stop()


class RefusingServer:
    """A mail server that answers every connection with ``banner`` (554) and hangs up."""

    def __init__(self, banner: str = "554 5.7.1 no service for your address") -> None:
        self.banner = banner.encode() + b"\r\n"
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(8)
        self.port = int(self.sock.getsockname()[1])
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            with conn:
                conn.sendall(self.banner)
                conn.settimeout(2)
                try:
                    while conn.recv(1024):
                        conn.sendall(b"503 5.5.1 go away\r\n")
                except OSError:
                    pass

    def close(self) -> None:
        self.sock.close()
