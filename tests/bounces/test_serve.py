"""`newsletter bounces serve`: a real SMTP listener, as a process, fed with smtplib."""

from __future__ import annotations

import signal
import smtplib
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from newsletter.bounces.listener import MAX_RECIPIENTS
from newsletter.models import BounceKind
from tests.bounces.conftest import (
    BOUNCE_ADDRESS,
    ROOT,
    bounce_rows,
    crlf,
    filled,
    process_env,
    status_of,
)
from tests.helpers import free_port

MAX_SIZE = 200_000
COMMAND = [sys.executable, "-m", "newsletter.main", "bounces", "serve"]


@pytest.fixture
def serve(bounce_app: Any, tmp_path: Any) -> Iterator[Callable[..., tuple[int, Any]]]:
    """Start `bounces serve` as a process; return its port and the process."""
    started: list[subprocess.Popen[bytes]] = []

    def start(**env: str) -> tuple[int, subprocess.Popen[bytes]]:
        port = free_port()
        log = open(tmp_path / f"serve-{port}.log", "wb")  # noqa: SIM115
        proc = subprocess.Popen(
            [*COMMAND, "--port", str(port), "--max-size", str(MAX_SIZE)],
            env=process_env(bounce_app, **env),
            cwd=ROOT,
            stdout=subprocess.DEVNULL,
            stderr=log,
        )
        started.append(proc)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            assert proc.poll() is None, (tmp_path / f"serve-{port}.log").read_text()
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
                return port, proc
            except OSError:
                time.sleep(0.05)
        raise AssertionError("bounces serve did not start listening")

    yield start
    for proc in started:
        if proc.poll() is None:
            proc.kill()
        proc.wait()


def smtp(port: int) -> smtplib.SMTP:
    client = smtplib.SMTP("127.0.0.1", port, timeout=30)
    client.ehlo("mx.example.net")
    return client


def test_a_bounce_sent_to_the_verp_address_bounces_the_reader(serve, sent):
    first, other = sent(2)
    port, _proc = serve()
    with smtp(port) as client:
        refused = client.sendmail(
            "", [first.envelope_from], crlf(filled("gmail_no_such_user.eml", first))
        )
    assert refused == {}
    assert status_of(first.subscriber_id) == "bounced"
    assert status_of(other.subscriber_id) == "confirmed"
    (row,) = bounce_rows()
    assert (row.kind, row.source, row.delivery_id) == (BounceKind.HARD, "dsn", first.delivery_id)


def test_a_complaint_to_the_plain_address_is_matched_by_message_id(serve, sent):
    (copy,) = sent(1)
    port, _proc = serve()
    raw = crlf(filled("arf_abuse.eml", copy, envelope_to=BOUNCE_ADDRESS))
    with smtp(port) as client:
        client.sendmail("feedbackloop@fbl.example.net", [BOUNCE_ADDRESS], raw)
    assert status_of(copy.subscriber_id) == "unsubscribed"


def test_only_the_bounce_address_and_its_tags_are_accepted(serve, sent):
    (copy,) = sent(1)
    port, _proc = serve()
    with smtp(port) as client:
        client.mail("")
        for address in ("someone@example.org", "bounces@example.com", "bouncesx@example.org"):
            code, message = client.rcpt(address)
            assert (code, message[:5]) == (550, b"5.1.1"), address
        assert client.rcpt("Bounces+anything@EXAMPLE.org")[0] == 250
        assert client.rcpt(BOUNCE_ADDRESS)[0] == 250
        client.rset()
    assert status_of(copy.subscriber_id) == "confirmed"


def test_a_message_over_the_size_cap_is_refused_with_552_5_3_4(serve, sent):
    (copy,) = sent(1)
    port, _proc = serve()
    big = crlf(filled("ses_dsn.eml", copy)) + (b"y" * 76 + b"\r\n") * 4000
    with smtp(port) as client:
        # Announced with SIZE=: refused at MAIL FROM.
        with pytest.raises(smtplib.SMTPSenderRefused) as announced:
            client.sendmail("", [copy.envelope_from], big)
        assert announced.value.smtp_code == 552
        assert announced.value.smtp_error.startswith(b"5.3.4")
        # Not announced: refused after the data.
        client.rset()
        client.mail("")
        client.rcpt(copy.envelope_from)
        code, message = client.data(big)
        assert (code, message[:5]) == (552, b"5.3.4")
    assert status_of(copy.subscriber_id) == "confirmed" and bounce_rows() == []


@pytest.mark.parametrize("name", ["malformed.eml", "never_mailed.eml", "postfix_delayed.eml"])
def test_what_changes_nothing_is_still_accepted_and_dropped(serve, sent, name):
    (copy,) = sent(1)
    port, _proc = serve()
    raw = crlf(filled(name, copy if name == "postfix_delayed.eml" else None))
    with smtp(port) as client:
        assert client.sendmail("", [BOUNCE_ADDRESS], raw) == {}
    assert status_of(copy.subscriber_id) == "confirmed" and bounce_rows() == []


def test_an_unreachable_database_answers_451_so_the_sender_retries(serve, sent, tmp_path):
    (copy,) = sent(1)
    port, _proc = serve(DATABASE_URL=f"sqlite:///{tmp_path}/missing/folder/db.sqlite3")
    with smtp(port) as client, pytest.raises(smtplib.SMTPDataError) as refused:
        client.sendmail("", [copy.envelope_from], crlf(filled("ses_dsn.eml", copy)))
    assert refused.value.smtp_code == 451
    assert status_of(copy.subscriber_id) == "confirmed"


def test_sigterm_stops_the_listener(serve):
    port, proc = serve()
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=15) == 0
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", port), timeout=1).close()


def test_one_mail_to_several_verp_addresses_bounces_each_copy(serve, sent):
    first, second, other = sent(3)
    port, _proc = serve()
    raw = crlf(filled("gmail_no_such_user.eml", first))
    with smtp(port) as client:
        # The same copy named twice counts once.
        rcpts = [first.envelope_from, second.envelope_from, first.envelope_from]
        assert client.sendmail("", rcpts, raw) == {}
    assert status_of(first.subscriber_id) == "bounced"
    assert status_of(second.subscriber_id) == "bounced"
    assert status_of(other.subscriber_id) == "confirmed"
    assert sorted(row.delivery_id for row in bounce_rows()) == sorted(
        [first.delivery_id, second.delivery_id]
    )


def test_recipients_past_the_cap_get_452_and_the_sender_sends_them_later(serve, sent):
    (copy,) = sent(1)
    port, _proc = serve()
    local, _, domain = BOUNCE_ADDRESS.partition("@")
    tags = [f"{local}+n{i}@{domain}" for i in range(MAX_RECIPIENTS + 5)]
    with smtp(port) as client:
        client.mail("")
        answers = [
            client.rcpt(address)
            for address in [
                *tags[: MAX_RECIPIENTS - 1],
                copy.envelope_from,
                *tags[MAX_RECIPIENTS - 1 :],
            ]
        ]
        assert [code for code, _ in answers[:MAX_RECIPIENTS]] == [250] * MAX_RECIPIENTS
        assert {(code, text) for code, text in answers[MAX_RECIPIENTS:]} == {
            (452, b"4.5.3 Too many recipients")
        }
        # The transaction goes on with the recipients accepted.
        assert client.data(crlf(filled("gmail_no_such_user.eml", copy)))[0] == 250
        # The next transaction starts counting afresh: a refused one is accepted there.
        client.mail("")
        assert client.rcpt(tags[-1])[0] == 250
        client.rset()
    assert status_of(copy.subscriber_id) == "bounced"
