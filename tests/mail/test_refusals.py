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

from newsletter.mail.refusals import Stage, Verdict, judge
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

# (stage, answer, verdict): the examples the issue and SPEC.md name, one or more per outcome.
CASES = [
    # the reader's address is bad: only a clear "no such user"
    (Stage.RCPT, "550 5.1.1 no such user", V.HARD),
    (Stage.RCPT, "550 5.1.10 RecipientNotFound", V.HARD),
    (Stage.RCPT, "553 5.1.3 bad address syntax", V.HARD),
    (Stage.RCPT, "550 5.2.1 mailbox disabled", V.HARD),
    (Stage.RCPT, "550 no such user here", V.HARD),
    (Stage.RCPT, "551 user not local", V.HARD),
    (Stage.RCPT, "553 mailbox name not allowed", V.HARD),
    # SPEC: a plain 550/551/553 to RCPT, with no enhanced code and no word about us
    (Stage.RCPT, "550 Requested action not taken: mailbox unavailable", V.HARD),
    (Stage.END, "550 5.1.1 user unknown (checked after DATA)", V.HARD),
    # the mailbox is full: a soft bounce
    (Stage.RCPT, "552 5.2.2 mailbox full", V.SOFT),
    (Stage.RCPT, "552 mailbox over quota", V.SOFT),
    (Stage.END, "552 5.2.2 over quota", V.SOFT),
    (Stage.RCPT, "550 5.2.0 mailbox unavailable for now", V.SOFT),
    # refused for this reader, for no clear reason: the copy fails, the reader is left alone
    (Stage.RCPT, "554 transaction failed", V.BLOCKED),
    (Stage.RCPT, "550 5.5.0 Requested action not taken: mailbox unavailable", V.BLOCKED),
    # try again later
    (Stage.RCPT, "451 4.7.1 greylisted, try again later", V.RETRY),
    (Stage.RCPT, "450 4.2.2 mailbox full for now", V.RETRY),
    (Stage.RCPT, "451 try again later", V.RETRY),
    (Stage.END, "451 4.3.0 local error in processing", V.RETRY),
    # "not now" before any reader is named: the whole send waits for the relay by itself
    (Stage.MAIL, "451 4.3.0 try again", V.WAIT),
    # SPEC: a quota or rate answer to us (4.7.x) before any reader pauses, with it as reason
    (Stage.MAIL, "421 4.7.0 too many messages, slow down", V.RELAY),
    (Stage.END, "451 4.7.1 rate limited", V.THROTTLED),
    # a refusal of us: nobody bounced, the send pauses, the copy waits
    (Stage.MAIL, "550 5.4.5 Daily sending quota exceeded", V.RELAY),
    (Stage.MAIL, "554 5.7.1 client host blocked", V.RELAY),
    (Stage.MAIL, "553 5.1.8 sender address rejected", V.RELAY),
    (Stage.MAIL, "550 not allowed to send", V.RELAY),
    (Stage.RCPT, "550 5.7.1 our policy refuses mail from your domain", V.RELAY),
    (Stage.RCPT, "550 5.4.5 Daily sending quota exceeded", V.RELAY),
    (Stage.RCPT, "554 5.3.4 message too big for system", V.RELAY),
    (Stage.END, "552 5.2.3 message exceeds fixed maximum size", V.RELAY),
    (Stage.END, "554 5.7.1 message refused as spam", V.RELAY),
    (Stage.END, "554 transaction failed", V.RELAY),
    (Stage.END, "550 5.6.0 content refused", V.RELAY),
]

# Real providers' replies, as quoted in their postmaster pages and in issue 18, at the stage
# where they come. Each was misread before: a refusal of us bounced the reader, or one dead
# address paused the whole send.
REAL_REPLIES = [
    (Stage.RCPT, "554 5.7.1 Service unavailable; client host blocked", V.RELAY),
    (Stage.RCPT, "550 Sender verify failed", V.RELAY),  # Exim
    (Stage.RCPT, "550 Administrative prohibition", V.RELAY),  # Exim
    (Stage.RCPT, "550 Rejected by header based Anti-Spoofing policy", V.RELAY),  # Mimecast
    (Stage.RCPT, "550 5.1.0 sender rejected", V.RELAY),  # Cox
    (Stage.RCPT, "550 too many recipients this hour", V.RELAY),  # GoDaddy
    (
        Stage.RCPT,
        "550 5.2.1 The user you are trying to contact is receiving mail at a rate that "
        "prevents additional messages from being delivered",
        V.RELAY,
    ),  # Gmail
    (
        Stage.END,
        "554 5.2.0 STOREDRV.Submission.Exception:SendAsDeniedException."
        "MapiExceptionSendAsDenied; Failed to process message due to a permanent exception",
        V.RELAY,
    ),  # Office 365 refusing our sender
    (
        Stage.RCPT,
        "421 4.7.0 [TSS04] Messages from 192.0.2.1 temporarily deferred due to unexpected "
        "volume or user complaints",
        V.THROTTLED,
    ),  # Yahoo
    (
        Stage.RCPT,
        "451 4.7.650 The mail server [192.0.2.1] has been temporarily rate limited due to IP "
        "reputation",
        V.THROTTLED,
    ),  # Outlook
    (
        Stage.RCPT,
        "421 4.7.28 Our system has detected an unusual rate of unsolicited mail originating "
        "from your IP address",
        V.THROTTLED,
    ),  # Gmail
    # per-reader answers never stall a send
    (Stage.END, "554 delivery error: dd This user doesn't have a yahoo.com account", V.HARD),
    (Stage.RCPT, "550 5.4.1 Recipient address rejected: Access denied", V.BLOCKED),  # Exchange
    (Stage.RCPT, "552 1 Requested mail action aborted, mailbox not found", V.HARD),
    (
        Stage.RCPT,
        "550 5.1.1 The email account that you tried to reach does not exist",
        V.HARD,
    ),  # Gmail
    (Stage.RCPT, "550 5.1.10 RESOLVER.ADR.RecipientNotFound; Recipient not found", V.HARD),
    (Stage.RCPT, "552 5.2.2 The email account that you tried to reach is over quota", V.SOFT),
    (Stage.RCPT, "550 5.1.1 sender rejected: MailFrom domain is listed in Spamhaus", V.RELAY),
]
CASES += REAL_REPLIES


@pytest.mark.parametrize(("stage", "answer", "verdict"), CASES)
def test_the_table_reads_each_answer(stage, answer, verdict):
    code, _, text = answer.partition(" ")
    assert judge(stage, int(code), text)[0] is verdict


@pytest.mark.parametrize(
    ("stage", "answer"),
    [
        (Stage.CONNECT, "421 4.3.2 service not available"),
        (Stage.EHLO, "421 too busy, try later"),
        (Stage.AUTH, "454 4.3.0 temporary authentication failure"),
        (Stage.MAIL, "452 4.5.3 too many sessions"),
    ],
)
def test_a_not_now_before_any_reader_is_named_waits_for_the_relay(stage, answer):
    code, _, text = answer.partition(" ")
    assert judge(stage, int(code), text)[0] is V.WAIT


def test_a_rate_or_quota_answer_to_our_login_pauses_as_spec_says():
    assert judge(Stage.AUTH, 454, "4.7.0 temporary authentication failure")[0] is V.RELAY


def test_an_enhanced_code_that_contradicts_the_reply_code_is_ignored():
    # the reply code (permanent) and the words (a full mailbox) decide
    assert judge(Stage.RCPT, 550, "4.2.2 mailbox full")[0] is V.SOFT


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
    V.THROTTLED: SMTPTemporaryError,
    V.RELAY: SMTPRelayError,
    V.WAIT: SMTPTemporaryError,
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
        ("421 4.3.2 service not available, try later", SMTPTemporaryError, V.WAIT),
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
