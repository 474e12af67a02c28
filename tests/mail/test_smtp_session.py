"""The SMTP client's own mail transaction: pipelining, dot-stuffing, refusals, SMTPUTF8, IDN."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from typing import Any

import pytest
from aiosmtpd.controller import Controller

from newsletter.config import Settings
from newsletter.mail.smtp import SMTPPermanentError, SMTPSender, SMTPTemporaryError
from tests.helpers import free_port, settings_from


class Recorder:
    """Accept everything; keep each envelope and the message as the server stored it."""

    def __init__(self, pipelining: bool = False, refuse: dict[str, str] | None = None) -> None:
        self.pipelining = pipelining
        self.refuse = refuse or {}
        self.got: list[tuple[str, list[str], bytes, list[str]]] = []

    async def handle_EHLO(
        self, server: Any, session: Any, envelope: Any, hostname: str, responses: list[str]
    ) -> list[str]:
        session.host_name = hostname
        if self.pipelining:
            responses.insert(-1, "250-PIPELINING")
        return responses

    async def handle_RCPT(
        self, server: Any, session: Any, envelope: Any, address: str, options: list[str]
    ) -> str:
        if address in self.refuse:
            return self.refuse[address]
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        data = envelope.original_content or envelope.content
        self.got.append((envelope.mail_from, list(envelope.rcpt_tos), data, envelope.mail_options))
        return "250 OK"


@pytest.fixture(params=[False, True], ids=["one-by-one", "pipelining"])
def server(request: Any) -> Iterator[tuple[Recorder, dict[str, Any]]]:
    handler = Recorder(pipelining=request.param)
    controller = Controller(
        handler, hostname="127.0.0.1", port=free_port(), enable_SMTPUTF8=True, ready_timeout=10
    )
    controller.start()
    yield handler, _config(controller.port)
    controller.stop()


def _config(port: int, **extra: str) -> Settings:
    return settings_from(
        **{
            "SMTP_HOST": "127.0.0.1",
            "SMTP_PORT": str(port),
            "SMTP_SECURITY": "none",
            "SMTP_TIMEOUT": "5",
            "MAIL_FROM": "Tips <tips@example.org>",
            **extra,
        }
    )


def test_lines_that_start_with_a_dot_arrive_unchanged(server):
    handler, config = server
    body = b"Subject: dots\r\n\r\n.\r\n..two\r\n.leading\r\nmiddle . dot\r\n."
    with SMTPSender(config) as smtp:
        smtp.send("a@example.com", body)
        smtp.send("b@example.com", b".starts the message\r\n")
    assert [g[2] for g in handler.got] == [body + b"\r\n", b".starts the message\r\n"]
    assert [g[:2] for g in handler.got] == [
        ("tips@example.org", ["a@example.com"]),
        ("tips@example.org", ["b@example.com"]),
    ]


def test_a_refused_recipient_leaves_the_connection_usable(server):
    handler, config = server
    handler.refuse = {"gone@example.com": "550 5.1.1 no such user", "later@example.com": "451 busy"}
    with SMTPSender(config) as smtp:
        with pytest.raises(SMTPPermanentError) as caught:
            smtp.send("gone@example.com", b"Subject: x\r\n\r\nx\r\n")
        assert caught.value.code == 550
        with pytest.raises(SMTPTemporaryError, match="451 busy"):
            smtp.send("later@example.com", b"Subject: x\r\n\r\nx\r\n")
        smtp.send("here@example.com", b"Subject: x\r\n\r\nx\r\n")
    assert [g[1] for g in handler.got] == [["here@example.com"]]


def test_an_internationalised_domain_goes_out_in_its_ascii_form(server):
    handler, config = server
    with SMTPSender(config) as smtp:
        smtp.send("anna@bücher.example", b"Subject: x\r\n\r\nx\r\n")
    assert handler.got[0][1] == ["anna@xn--bcher-kva.example"]
    assert "SMTPUTF8" not in handler.got[0][3]


def test_a_non_ascii_mailbox_uses_smtputf8_where_the_server_offers_it(server):
    handler, config = server
    with SMTPSender(config) as smtp:
        smtp.send("josé@example.com", b"Subject: x\r\n\r\nx\r\n")
    assert handler.got[0][1] == ["josé@example.com"]
    assert "SMTPUTF8" in handler.got[0][3]


def test_a_non_ascii_mailbox_fails_for_good_where_the_server_cannot_take_it():
    handler = Recorder()
    controller = Controller(
        handler, hostname="127.0.0.1", port=free_port(), enable_SMTPUTF8=False, ready_timeout=10
    )
    controller.start()
    try:
        with SMTPSender(_config(controller.port)) as smtp:
            with pytest.raises(SMTPPermanentError, match="SMTPUTF8"):
                smtp.send("josé@example.com", b"Subject: x\r\n\r\nx\r\n")
            smtp.send("jose@example.com", b"Subject: x\r\n\r\nx\r\n")
    finally:
        controller.stop()
    assert [g[1] for g in handler.got] == [["jose@example.com"]]


class StrictPipeliner:
    """A server that offers PIPELINING and answers the envelope only once all of it arrived.

    A client that waited for each answer before the next command would hang here.
    """

    def __init__(self) -> None:
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.writes_before_data: list[bytes] = []
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        conn, _ = self.sock.accept()
        conn.settimeout(5)
        f = conn.makefile("rb")
        conn.sendall(b"220 strict ESMTP\r\n")
        f.readline()  # EHLO
        conn.sendall(b"250-strict\r\n250-PIPELINING\r\n250 8BITMIME\r\n")
        lines = [f.readline() for _ in range(3)]  # MAIL, RCPT, DATA, without any answer yet
        self.writes_before_data = lines
        conn.sendall(b"250 sender ok\r\n250 recipient ok\r\n354 go ahead\r\n")
        while f.readline() not in (b".\r\n", b""):
            pass
        conn.sendall(b"250 queued\r\n")
        f.readline()  # QUIT
        conn.sendall(b"221 bye\r\n")
        conn.close()


def test_with_pipelining_the_envelope_goes_out_without_waiting_for_answers():
    server = StrictPipeliner()
    with SMTPSender(_config(server.port, SMTP_TIMEOUT="3")) as smtp:
        smtp.send("a@example.com", b"Subject: x\r\n\r\nx\r\n")
    server.thread.join(5)
    assert server.writes_before_data == [
        b"MAIL FROM:<tips@example.org>\r\n",
        b"RCPT TO:<a@example.com>\r\n",
        b"DATA\r\n",
    ]
