"""The refusal table, row by row: each answer at each stage, through a real SMTP session.

Every case is sent to a real aiosmtpd server answering it at that stage; the error the
client raises says what it means (``verdict``) and where it came (``stage``).
"""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from typing import Any

import pytest

from newsletter.mail.refusals import RULES, Stage, Verdict, enhanced_code, judge
from newsletter.mail.smtp import (
    SMTPPermanentError,
    SMTPRefusal,
    SMTPRelayError,
    SMTPSender,
    SMTPTemporaryError,
)
from tests.helpers import free_port, settings_from
from tests.helpers.smtp import start_sink

V = Verdict
MESSAGE = b"From: a@example.org\r\nTo: b@example.com\r\nSubject: t\r\n\r\nbody\r\n"

# (stage, answer, verdict): the examples the issue and SPEC.md name, and one per table row.
CASES = [
    # the reader's address is bad
    (Stage.RCPT, "550 5.1.1 no such user", V.HARD),
    (Stage.RCPT, "550 5.1.10 RecipientNotFound", V.HARD),
    (Stage.RCPT, "553 5.1.3 bad address syntax", V.HARD),
    (Stage.RCPT, "550 5.2.1 mailbox disabled", V.HARD),
    (Stage.RCPT, "550 no such user here", V.HARD),
    (Stage.RCPT, "551 user not local", V.HARD),
    (Stage.RCPT, "553 mailbox name not allowed", V.HARD),
    (Stage.RCPT, "550 5.5.0 Requested action not taken: mailbox unavailable", V.HARD),
    (Stage.END, "550 5.1.1 user unknown (checked after DATA)", V.HARD),
    # the mailbox is full: a soft bounce
    (Stage.RCPT, "552 5.2.2 mailbox full", V.SOFT),
    (Stage.RCPT, "552 mailbox over quota", V.SOFT),
    (Stage.END, "552 5.2.2 over quota", V.SOFT),
    (Stage.RCPT, "550 5.2.0 mailbox unavailable for now", V.SOFT),
    # a domain that blocks us: this copy fails, the reader is left alone
    (Stage.RCPT, "550 5.7.1 our policy refuses mail from your domain", V.BLOCKED),
    (Stage.RCPT, "554 transaction failed", V.BLOCKED),
    # try again later
    (Stage.RCPT, "451 4.7.1 greylisted, try again later", V.RETRY),
    (Stage.RCPT, "450 4.2.2 mailbox full for now", V.RETRY),
    (Stage.RCPT, "451 try again later", V.RETRY),
    (Stage.END, "451 4.3.0 local error in processing", V.RETRY),
    (Stage.MAIL, "451 4.3.0 try again", V.RETRY),
    # the relay refuses us: nobody bounced, the send pauses
    (Stage.MAIL, "550 5.4.5 Daily sending quota exceeded", V.RELAY),
    (Stage.MAIL, "554 5.7.1 client host blocked", V.RELAY),
    (Stage.MAIL, "553 5.1.8 sender address rejected", V.RELAY),
    (Stage.MAIL, "550 not allowed to send", V.RELAY),
    (Stage.MAIL, "421 4.7.0 too many messages, slow down", V.RELAY),
    (Stage.RCPT, "550 5.4.5 Daily sending quota exceeded", V.RELAY),
    (Stage.RCPT, "554 5.3.4 message too big for system", V.RELAY),
    (Stage.END, "552 5.2.3 message exceeds fixed maximum size", V.RELAY),
    (Stage.END, "554 5.7.1 message refused as spam", V.RELAY),
    (Stage.END, "451 4.7.1 rate limited", V.RELAY),
    (Stage.END, "554 transaction failed", V.RELAY),
    (Stage.END, "550 5.6.0 content refused", V.RELAY),
]


@pytest.mark.parametrize(("stage", "answer", "verdict"), CASES)
def test_the_table_reads_each_answer(stage, answer, verdict):
    code, _, text = answer.partition(" ")
    assert judge(stage, int(code), text)[0] is verdict


def test_every_row_of_the_table_is_reached_by_a_case():
    used = set()
    for stage, answer, _ in CASES:
        code, _, text = answer.partition(" ")
        enhanced = enhanced_code(text)
        used.add(next(i for i, r in enumerate(RULES) if r.matches(stage, int(code), enhanced)))
    # The last row is the catch-all for codes outside SMTP's (never sent by a real server).
    assert used >= set(range(len(RULES) - 1)), sorted(set(range(len(RULES))) - used)


def test_an_enhanced_code_that_contradicts_the_reply_code_is_ignored():
    assert judge(Stage.RCPT, 550, "4.2.2 mailbox full")[0] is V.HARD


@pytest.fixture
def sink() -> Iterator[Any]:
    controller, handler = start_sink(free_port())
    handler.port = controller.port
    yield handler
    controller.stop()


def _sender(port: int, **extra: str) -> SMTPSender:
    config = settings_from(
        **{
            "SMTP_HOST": "127.0.0.1",
            "SMTP_PORT": str(port),
            "SMTP_SECURITY": "none",
            "SMTP_TIMEOUT": "5",
            "MAIL_FROM": "Tips <tips@example.org>",
            **extra,
        }
    )
    return SMTPSender(config)


def _refusal(port: int) -> SMTPRefusal:
    with _sender(port) as smtp, pytest.raises(SMTPRefusal) as caught:
        smtp.send("b@example.com", MESSAGE)
    return caught.value


ERRORS = {
    V.HARD: SMTPPermanentError,
    V.SOFT: SMTPPermanentError,
    V.BLOCKED: SMTPPermanentError,
    V.RETRY: SMTPTemporaryError,
    V.RELAY: SMTPRelayError,
}


@pytest.mark.parametrize("pipelining", [False, True], ids=["one-by-one", "pipelining"])
@pytest.mark.parametrize(("stage", "answer", "verdict"), CASES)
def test_a_real_server_answering_at_that_stage(sink, pipelining, stage, answer, verdict):
    sink.pipelining = pipelining
    if stage is Stage.MAIL:
        sink.mail_answer = answer
    elif stage is Stage.RCPT:
        sink.script("b@example.com", answer)
    else:
        sink.script("b@example.com", f"end {answer}")
    error = _refusal(sink.port)
    assert type(error) is ERRORS[verdict]
    assert (error.verdict, error.stage) == (verdict, stage)
    assert str(error) == answer
    assert sink.accepted == [] or stage is Stage.END


class Greeter:
    """A raw SMTP server that greets with a fixed line (a relay refusing our host at once)."""

    def __init__(self, greeting: str) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(4)
        self.port = self.sock.getsockname()[1]
        self.greeting = greeting.encode() + b"\r\n"
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            conn.sendall(self.greeting)
            conn.close()

    def close(self) -> None:
        self.sock.close()


@pytest.mark.parametrize(
    ("greeting", "error", "verdict"),
    [
        ("554 5.7.1 client host blocked", SMTPRelayError, V.RELAY),
        ("421 4.3.2 service not available, try later", SMTPTemporaryError, V.RETRY),
    ],
)
def test_a_refusal_at_connect(greeting, error, verdict):
    server = Greeter(greeting)
    try:
        refusal = _refusal(server.port)
    finally:
        server.close()
    assert type(refusal) is error
    assert (refusal.verdict, refusal.stage) == (verdict, Stage.CONNECT)
    assert greeting.split(" ", 1)[1] in str(refusal)
