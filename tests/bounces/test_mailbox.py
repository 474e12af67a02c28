"""BOUNCE_MAILBOX against a real IMAP and POP3 server (Dovecot, started by these tests).

A bounce is put into the Maildir as an MTA would deliver it; one poll takes it in; the
reader is bounced and the message has left the INBOX (moved to Processed on IMAP, deleted
on POP3), and only after the database has it.
"""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from typing import Any

import pytest
import sqlalchemy as sa

from newsletter.bounces.inbound import apply_mail
from newsletter.bounces.mailbox import MailboxError, poll
from newsletter.config import ConfigError, parse_mailbox
from newsletter.extensions import db, settings
from newsletter.tasks.bounces import poll_mailbox
from tests.bounces import dovecot
from tests.bounces.conftest import ROOT, bounce_rows, crlf, filled, process_env, status_of

USERS = [f"box{i}" for i in range(40)]


@pytest.fixture(scope="module")
def server() -> Iterator[dovecot.Dovecot]:
    missing = dovecot.why_not()
    if missing:
        pytest.skip(missing)
    try:
        started = dovecot.start(USERS)
    except RuntimeError as exc:
        pytest.skip(f"Dovecot is installed but would not start here: {exc}")
    yield started
    started.stop()


@pytest.fixture
def user(server: dovecot.Dovecot) -> str:
    """A mail user of its own for each test."""
    taken = {p.name for p in (server.root / "mail").iterdir()}
    name = next(u for u in USERS if u not in taken)
    (server.root / "mail" / name).mkdir()
    os.chown(server.root / "mail" / name, server.mail_uid, server.mail_gid)
    return name


def mailbox_app(make_app: Any, sink: Any, url: str, **extra: str) -> Any:
    return make_app(
        SMTP_PORT=str(sink.port),
        BOUNCE_ADDRESS="bounces@example.org",
        BOUNCE_MAILBOX=url,
        **extra,
    )


@pytest.mark.parametrize("scheme", ["imaps", "imap", "pop3s", "pop3"])
def test_one_poll_takes_the_bounce_in_and_clears_the_inbox(
    server, user, bounce_app, sent, make_app, sink, scheme
):
    first, other = sent(2)
    server.deliver(user, crlf(filled("postfix_user_unknown.eml", first)))
    server.deliver(user, crlf(filled("arf_abuse.eml", other, envelope_to="fbl@example.org")))
    app = mailbox_app(make_app, sink, server.url(scheme, user))
    done = poll_mailbox(app)
    assert (done.handled, done.left) == (2, 0)
    assert done.lines == [
        f"recorded hard for subscriber {first.subscriber_id} and applied",
        f"recorded complaint for subscriber {other.subscriber_id} and applied",
    ]
    assert status_of(first.subscriber_id) == "bounced"
    assert status_of(other.subscriber_id) == "unsubscribed"
    assert server.messages(user) == []
    kept = server.messages(user, "Processed")
    assert len(kept) == (2 if scheme.startswith("imap") else 0)  # POP3 has no folders
    assert poll_mailbox(app).handled == 0  # nothing comes back


def test_where_processed_cannot_be_created_handled_mail_is_expunged(
    server, user, bounce_app, sent, make_app, sink, caplog
):
    (copy,) = sent(1)
    server.deliver(user, crlf(filled("ses_dsn.eml", copy)))
    (server.maildir(user) / ".Processed").write_text("a file where the folder would go")
    with caplog.at_level(logging.WARNING, logger="newsletter.bounces.mailbox"):
        done = poll_mailbox(mailbox_app(make_app, sink, server.url("imaps", user)))
    assert done.handled == 1
    assert status_of(copy.subscriber_id) == "bounced"
    assert server.messages(user) == []
    assert "cannot create IMAP folder Processed" in caplog.text
    assert (server.maildir(user) / ".Processed").is_file()


def test_mail_that_changes_nothing_is_cleared_too(server, user, bounce_app, sent, make_app, sink):
    (copy,) = sent(1)
    for raw in (
        filled("malformed.eml", copy),
        filled("never_mailed.eml", None),
        filled("postfix_delayed.eml", copy),
        b"Subject: hello\r\n\r\nnot a bounce\r\n",
    ):
        server.deliver(user, crlf(raw))
    done = poll_mailbox(mailbox_app(make_app, sink, server.url("imaps", user)))
    assert done.handled == 4
    assert [line.split(":")[0] for line in done.lines] == [
        "ignored",
        "unmatched",
        "ignored",
        "ignored",
    ]
    assert status_of(copy.subscriber_id) == "confirmed" and bounce_rows() == []
    assert server.messages(user) == []


@pytest.mark.parametrize("scheme", ["imaps", "pop3s"])
def test_a_message_over_the_cap_is_removed_unread(
    server, user, bounce_app, sent, make_app, sink, scheme
):
    (copy,) = sent(1)
    server.deliver(user, crlf(filled("ses_dsn.eml", copy)) + b"x" * 76 * 2000)
    app = mailbox_app(make_app, sink, server.url(scheme, user))

    def take(raw: bytes, envelope_to: str) -> list[str]:
        return apply_mail(db.session(), raw, envelope_to, settings(app))

    done = poll(settings(app).mailbox, take, max_size=50_000)
    assert done.handled == 1 and done.lines[0].startswith("refused: the message is over")
    assert status_of(copy.subscriber_id) == "confirmed" and bounce_rows() == []
    assert server.messages(user) == []


def test_a_database_that_does_not_answer_leaves_the_message_in_place(
    server, user, bounce_app, sent, make_app, sink, tmp_path
):
    (copy,) = sent(1)
    server.deliver(user, crlf(filled("ses_dsn.eml", copy)))
    down = mailbox_app(
        make_app,
        sink,
        server.url("imaps", user),
        DATABASE_URL=f"sqlite:///{tmp_path}/missing/db.sqlite3",
    )
    with pytest.raises(sa.exc.OperationalError):
        poll_mailbox(down)
    assert len(server.messages(user)) == 1  # still there for the next poll
    done = poll_mailbox(mailbox_app(make_app, sink, server.url("imaps", user)))
    assert done.handled == 1 and status_of(copy.subscriber_id) == "bounced"


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        ({"ca": False}, "CERTIFICATE_VERIFY_FAILED"),  # a private CA is not trusted by default
        ({"password": "wrong"}, "uthentication failed"),
    ],
    ids=["untrusted-certificate", "wrong-password"],
)
def test_a_mailbox_that_refuses_us_raises_and_keeps_the_mail(
    server, user, bounce_app, sent, make_app, sink, change, expected
):
    (copy,) = sent(1)
    server.deliver(user, crlf(filled("ses_dsn.eml", copy)))
    for scheme in ("imaps", "pop3s"):
        url = server.url(scheme, user, ca=change.get("ca", True))
        if "password" in change:
            url = url.replace(dovecot.PASSWORD, change["password"])
        with pytest.raises(MailboxError) as raised:
            poll_mailbox(mailbox_app(make_app, sink, url))
        assert expected in str(raised.value)
        assert dovecot.PASSWORD not in str(raised.value)
    assert len(server.messages(user)) == 1
    assert status_of(copy.subscriber_id) == "confirmed"


def test_the_worker_polls_the_mailbox_by_itself(server, user, bounce_app, sent, tmp_path):
    (copy,) = sent(1)
    server.deliver(user, crlf(filled("yahoo_no_account.eml", copy)))
    env = process_env(
        bounce_app,
        BOUNCE_MAILBOX=server.url("imaps", user),
        BOUNCE_POLL_INTERVAL="1",
        SMTP_HOST="127.0.0.1",
        SMTP_PORT="1",
        INSTANCE_PATH=str(tmp_path / "worker"),
    )
    with open(tmp_path / "worker.log", "wb") as log:
        worker = subprocess.Popen(
            [sys.executable, str(ROOT / "worker.py")], env=env, cwd=ROOT, stderr=log
        )
        try:
            deadline = time.monotonic() + 60
            while status_of(copy.subscriber_id) != "bounced":
                assert worker.poll() is None, (tmp_path / "worker.log").read_text()
                assert time.monotonic() < deadline, (tmp_path / "worker.log").read_text()
                time.sleep(0.2)
            while server.messages(user):
                assert time.monotonic() < deadline
                time.sleep(0.1)
            assert len(server.messages(user, "Processed")) == 1
        finally:
            worker.terminate()
            worker.wait(30)


@pytest.mark.parametrize(
    "url",
    [
        "imaps://host/INBOX",  # no user
        "imaps://user@host/INBOX",  # no password
        "ftp://user:pw@host/",
        "imaps://user:pw@host:99999/",
        "pop3s://user:pw@host/Bounces",  # POP3 has no folders
        "imaps://user:pw@host/INBOX?verify=no",
        "imaps://user:pw@host/INBOX?ca=/no/such/file.pem",
    ],
)
def test_a_bad_mailbox_url_stops_start_up_naming_the_setting(url):
    with pytest.raises(ConfigError) as raised:
        parse_mailbox(url)
    message = str(raised.value)
    assert message.startswith("BOUNCE_MAILBOX: ") and "\n" not in message
    assert "pw" not in message


def test_a_good_mailbox_url_is_read_and_shown_without_its_password(tmp_path):
    ca = tmp_path / "ca.pem"
    ca.write_text("-----BEGIN CERTIFICATE-----\n")
    box = parse_mailbox(f"imaps://bounce%40example.org:p%2Fss@Mail.Example.org/Bounces?ca={ca}")
    assert box is not None
    assert (box.scheme, box.host, box.port, box.username, box.password, box.folder, box.ca) == (
        "imaps",
        "mail.example.org",
        993,
        "bounce@example.org",
        "p/ss",
        "Bounces",
        str(ca),
    )
    assert "p/ss" not in str(box) and "p/ss" not in repr(box)
    assert parse_mailbox("pop3://u:p@127.0.0.1:1100") is not None
    assert parse_mailbox("") is None


def test_the_command_names_a_bad_mailbox_setting_in_one_line(tmp_path):
    env = {
        **os.environ,
        "NEWSLETTER_ENV": "testing",
        "INSTANCE_PATH": str(tmp_path),
        "BOUNCE_MAILBOX": "imaps://user:secret@host/INBOX?insecure=1",
    }
    done = subprocess.run(
        [sys.executable, "-m", "newsletter.main", "bounces", "list"],
        env=env,
        cwd=ROOT,
        capture_output=True,
        timeout=60,
    )
    assert done.returncode == 2
    assert done.stderr.decode().splitlines() == [
        "newsletter: bad setting: BOUNCE_MAILBOX: unknown parameter 'insecure'; only ca= is known"
    ]
