"""`newsletter bounces receive`: a real copy bounces, and the reader's status says so.

Each test sends a real issue through the worker to an SMTP sink, fills a bounce fixture
with what the sink received (the copy's Message-ID, its VERP envelope sender), and feeds it
to the command as an MTA's pipe would.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
import sqlalchemy as sa

from newsletter.extensions import db
from newsletter.models import BounceKind, EventKind, Subscriber, SubscriberEvent
from newsletter.subscribers.state import erase
from tests.bounces.conftest import (
    BOUNCE_ADDRESS,
    FOREIGN_ID,
    ROOT,
    bounce_rows,
    filled,
    process_env,
    status_of,
)
from tests.helpers import free_port

HARD_FORMATS = [
    ("postfix_user_unknown.eml", "dsn", "5.1.1"),
    ("gmail_no_such_user.eml", "dsn", "5.1.1"),
    ("office365_recipient_not_found.eml", "dsn", "5.1.10"),
    ("ses_dsn.eml", "dsn", "5.1.1"),
    ("exim_failed.eml", "flufl", "5.1.1"),
    ("qmail_failed.eml", "flufl", "5.1.1"),
    ("yahoo_no_account.eml", "flufl", ""),
]


def receive(app, raw: bytes, *args: str):
    return app.test_cli_runner().invoke(args=["bounces", "receive", *args], input=raw)


@pytest.mark.parametrize(("name", "source", "status"), HARD_FORMATS)
def test_a_hard_bounce_in_any_format_bounces_that_reader_only(
    bounce_app, sent, name, source, status
):
    first, other = sent(2)
    result = receive(bounce_app, filled(name, first), "--recipient", first.envelope_from)
    assert result.exit_code == 0, result.output
    assert result.stdout == f"recorded hard for subscriber {first.subscriber_id} and applied\n"
    assert status_of(first.subscriber_id) == "bounced"
    assert status_of(other.subscriber_id) == "confirmed"
    (row,) = bounce_rows()
    assert (row.kind, row.source, row.status_code) == (BounceKind.HARD, source, status)
    assert (row.subscriber_id, row.issue_id, row.delivery_id) == (
        first.subscriber_id,
        first.issue_id,
        first.delivery_id,
    )
    assert first.email in row.raw and row.diagnostic


def test_the_verp_tag_alone_names_the_copy(bounce_app, sent):
    (copy,) = sent(1)
    raw = filled("exim_failed.eml", copy, message_id=FOREIGN_ID)
    result = receive(bounce_app, raw, "--recipient", copy.envelope_from)
    assert result.stdout.startswith(f"recorded hard for subscriber {copy.subscriber_id}")
    assert status_of(copy.subscriber_id) == "bounced"


def test_without_recipient_the_delivered_to_header_gives_the_verp_address(bounce_app, sent):
    (copy,) = sent(1)
    raw = filled("qmail_failed.eml", copy, message_id=FOREIGN_ID)
    assert receive(bounce_app, raw).stdout.startswith("recorded hard")
    assert status_of(copy.subscriber_id) == "bounced"


@pytest.mark.parametrize("settings", [{"SEND_RETRY_BASE": "0.05"}])
def test_without_bounce_address_the_quoted_message_id_names_the_copy(bounce_app, sent):
    (copy,) = sent(1)
    assert copy.envelope_from == "tips@example.org"  # no VERP: MAIL_FROM is the sender
    raw = filled("postfix_user_unknown.eml", copy)
    result = receive(bounce_app, raw, "--recipient", "tips@example.org")
    assert result.stdout.startswith(f"recorded hard for subscriber {copy.subscriber_id}")
    assert status_of(copy.subscriber_id) == "bounced"


def test_a_full_mailbox_is_soft_and_the_reader_stays_until_the_limit(bounce_app, sent):
    # BOUNCE_SOFT_LIMIT is 3: three issues in a row soft-bounce before the address counts.
    for issue in range(3):
        (copy,) = sent(1 if issue == 0 else 0)
        result = receive(bounce_app, filled("mailbox_full.eml", copy))
        assert result.exit_code == 0
        expected = "bounced" if issue == 2 else "confirmed"
        assert status_of(copy.subscriber_id) == expected, issue
    assert [r.kind for r in bounce_rows()] == [BounceKind.SOFT] * 3


def test_a_policy_refusal_is_recorded_but_bounces_nobody(bounce_app, sent):
    (copy,) = sent(1)
    # The relay summarises 5.1.1; the receiving server's own answer says it blocked us.
    raw = filled("postfix_user_unknown.eml", copy).replace(
        b"User unknown in local recipient table", b"Client host blocked by policy"
    )
    raw = raw.replace(b"550 5.1.1 <", b"554 5.7.1 <")
    result = receive(bounce_app, raw)
    assert result.stdout.startswith("recorded blocked") and "no change" in result.stdout
    assert status_of(copy.subscriber_id) == "confirmed"


def test_nul_and_undecodable_bytes_in_a_bounce_are_stored_readably(bounce_app, sent):
    (copy,) = sent(1)
    raw = filled("postfix_user_unknown.eml", copy)
    raw = raw.replace(b"User unknown in local", b"Us\xe9r\x00 unknown \xff\xfe in local")
    result = receive(bounce_app, raw)
    assert result.exit_code == 0 and result.stdout.startswith("recorded hard"), result.output
    (row,) = bounce_rows()
    assert "\x00" not in row.raw + row.diagnostic and "unknown" in row.diagnostic
    assert status_of(copy.subscriber_id) == "bounced"


def test_delayed_changes_nothing(bounce_app, sent):
    (copy,) = sent(1)
    result = receive(bounce_app, filled("postfix_delayed.eml", copy))
    assert result.exit_code == 0
    assert result.stdout == "ignored: dsn says nothing to act on (4.4.1)\n"
    assert status_of(copy.subscriber_id) == "confirmed" and bounce_rows() == []


def test_the_same_bounce_twice_is_recorded_once(bounce_app, sent):
    (copy,) = sent(1)
    raw = filled("gmail_no_such_user.eml", copy)
    assert receive(bounce_app, raw).stdout.startswith("recorded hard")
    again = receive(bounce_app, raw)
    assert again.exit_code == 0 and again.stdout.startswith("duplicate: bounce ")
    assert len(bounce_rows()) == 1


def test_a_complaint_unsubscribes_the_reader_who_gets_no_more_issues(bounce_app, sent, sink):
    complainer, other = sent(2)
    raw = filled("arf_abuse.eml", complainer, envelope_to="fbl@example.org")
    result = receive(bounce_app, raw)
    assert (
        result.stdout
        == f"recorded complaint for subscriber {complainer.subscriber_id} and applied\n"
    )
    assert status_of(complainer.subscriber_id) == "unsubscribed"
    event = db.session.scalars(
        sa.select(SubscriberEvent)
        .where(SubscriberEvent.subscriber_id == complainer.subscriber_id)
        .order_by(SubscriberEvent.id.desc())
    ).first()
    assert event is not None and (event.kind, event.detail) == (EventKind.UNSUBSCRIBED, "complaint")
    (row,) = bounce_rows()
    assert (row.kind, row.source) == (BounceKind.COMPLAINT, "arf")
    db.session.commit()
    next_issue = sent()
    assert [c.email for c in next_issue] == [other.email]
    assert [a.rcpt for a in sink.accepted[-1:]] == [other.email]


def test_a_not_spam_report_changes_nothing(bounce_app, sent):
    (copy,) = sent(1)
    result = receive(bounce_app, filled("arf_not_spam.eml", copy))
    assert result.stdout.startswith("ignored: arf says nothing to act on")
    assert status_of(copy.subscriber_id) == "confirmed" and bounce_rows() == []


@pytest.mark.parametrize(
    ("envelope_to", "message_id"),
    [
        ("bounces+d{delivery}-0000000000@example.org", FOREIGN_ID),  # forged MAC
        ("bounces+d{other}-{mac}@example.org", FOREIGN_ID),  # another copy's MAC
        (BOUNCE_ADDRESS, "<issue-{issue}.sub-{subscriber}.deadbeef@example.org>"),  # forged id
    ],
    ids=["forged-tag", "borrowed-tag", "forged-message-id"],
)
def test_a_forged_tag_or_message_id_changes_nothing(bounce_app, sent, envelope_to, message_id):
    first, second = sent(2)
    mac = first.envelope_from.split("-")[1].split("@")[0]
    values = {
        "delivery": first.delivery_id,
        "other": second.delivery_id,
        "mac": mac,
        "issue": first.issue_id,
        "subscriber": first.subscriber_id,
    }
    raw = filled(
        "postfix_user_unknown.eml",
        first,
        envelope_to=envelope_to.format(**values),
        message_id=message_id.format(**values),
    )
    result = receive(bounce_app, raw, "--recipient", envelope_to.format(**values))
    assert result.exit_code == 0
    assert result.stdout.startswith("unmatched: no copy of ours")
    assert {status_of(first.subscriber_id), status_of(second.subscriber_id)} == {"confirmed"}
    assert bounce_rows() == []


def test_a_dsn_about_someone_never_mailed_changes_nothing(bounce_app, sent):
    (copy,) = sent(1)
    result = receive(bounce_app, filled("never_mailed.eml", None))
    assert result.exit_code == 0 and result.stdout.startswith("unmatched")
    assert status_of(copy.subscriber_id) == "confirmed" and bounce_rows() == []


def test_a_bounce_for_an_erased_reader_changes_nothing(bounce_app, sent):
    (copy,) = sent(1)
    assert erase(db.session(), copy.email)
    db.session.commit()
    for envelope in (copy.envelope_from, BOUNCE_ADDRESS):  # by the tag, by the Message-ID
        result = receive(bounce_app, filled("ses_dsn.eml", copy, envelope_to=envelope))
        assert result.exit_code == 0
        assert result.stdout.split(":")[0] in ("ignored", "unmatched"), result.stdout
    assert bounce_rows() == []
    assert db.session.scalar(sa.select(sa.func.count()).select_from(Subscriber)) == 0


@pytest.mark.parametrize(
    "raw",
    [b"", b"\x00\xff" * 5000, b"Subject: out of office\n\nBack on Monday.\n"],
    ids=["empty", "binary", "autoreply"],
)
def test_mail_that_is_no_bounce_is_dropped_with_exit_0(bounce_app, sent, raw):
    (copy,) = sent(1)
    result = receive(bounce_app, raw)
    assert result.exit_code == 0
    assert result.stdout == "ignored: not a bounce or complaint that can be read\n"
    assert status_of(copy.subscriber_id) == "confirmed" and bounce_rows() == []


def test_the_malformed_fixture_is_dropped(bounce_app, sent):
    (copy,) = sent(1)
    result = receive(bounce_app, filled("malformed.eml", copy))
    assert result.exit_code == 0 and result.stdout.startswith("ignored")
    assert "Traceback" not in result.output
    assert status_of(copy.subscriber_id) == "confirmed" and bounce_rows() == []


def test_a_multi_megabyte_message_is_refused_and_changes_nothing(bounce_app, sent):
    (copy,) = sent(1)
    raw = filled("postfix_user_unknown.eml", copy) + b"x" * (11 * 1024 * 1024)
    result = receive(bounce_app, raw)
    assert result.exit_code == 0
    assert result.stdout.startswith("refused: the message is 1") and "nothing recorded" in (
        result.stdout
    )
    assert status_of(copy.subscriber_id) == "confirmed" and bounce_rows() == []


# --- as a process, the way an MTA runs it -----------------------------------------------------


def run_cli(
    env: dict[str, str], *args: str, raw: bytes = b""
) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        [sys.executable, "-m", "newsletter.main", *args],
        input=raw,
        env=env,
        cwd=ROOT,
        capture_output=True,
        timeout=60,
    )


def run_receive(env: dict[str, str], raw: bytes, *args: str) -> subprocess.CompletedProcess[bytes]:
    return run_cli(env, "bounces", "receive", *args, raw=raw)


def test_the_pipe_command_records_a_bounce_in_its_own_process(bounce_app, sent):
    (copy,) = sent(1)
    done = run_receive(
        process_env(bounce_app),
        filled("office365_recipient_not_found.eml", copy),
        "--recipient",
        copy.envelope_from,
    )
    assert done.returncode == 0, done.stderr
    assert (
        done.stdout == f"recorded hard for subscriber {copy.subscriber_id} and applied\n".encode()
    )
    assert status_of(copy.subscriber_id) == "bounced"


@pytest.mark.parametrize("database", ["sqlite-missing-folder", "postgresql-nobody-listening"])
def test_an_unreachable_database_exits_75_so_the_mta_retries(bounce_app, sent, tmp_path, database):
    (copy,) = sent(1)
    url = (
        f"sqlite:///{tmp_path}/no/such/folder/db.sqlite3"
        if database.startswith("sqlite")
        else f"postgresql://postgres@127.0.0.1:{free_port()}/nothing"
    )
    env = process_env(bounce_app, DATABASE_URL=url)
    done = run_receive(env, filled("ses_dsn.eml", copy))
    assert done.returncode == 75, done.stderr
    lines = done.stderr.decode().strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: the database did not answer")
    assert b"Traceback" not in done.stderr
    assert status_of(copy.subscriber_id) == "confirmed"


def test_a_multi_megabyte_stdin_is_read_to_the_end_and_refused(bounce_app, sent):
    (copy,) = sent(1)
    raw = filled("ses_dsn.eml", copy) + b"z" * (12 * 1024 * 1024)
    done = run_receive(process_env(bounce_app), raw)
    assert done.returncode == 0 and done.stdout.startswith(b"refused:")
    assert status_of(copy.subscriber_id) == "confirmed" and bounce_rows() == []


def test_a_bad_setting_exits_75_so_the_mail_waits_for_the_operator(bounce_app, sent):
    (copy,) = sent(1)
    env = process_env(bounce_app, SUBSCRIBE_RATE_LIMIT="lots")
    done = run_receive(env, filled("ses_dsn.eml", copy))
    assert done.returncode == 75, done.stderr
    assert done.stderr.decode().strip().splitlines() == [
        "newsletter: bad setting: SUBSCRIBE_RATE_LIMIT: expected COUNT/SECONDS like 60/600, "
        "got 'lots'"
    ]
    assert status_of(copy.subscriber_id) == "confirmed"
    # Any other command still says "usage or setting error" the usual way.
    other = run_cli(env, "bounces", "list")
    assert other.returncode == 2 and b"bad setting" in other.stderr


RFC5965 = ROOT / "tests" / "bounces" / "corpus" / "rfc" / "rfc5965_b_abuse.eml"


def _feedback_loop_report(feedback_type: str, original_mail_from: str) -> bytes:
    """RFC 5965's example report, about our copy named only by its envelope sender."""
    raw = RFC5965.read_bytes().replace(b"abuse\n", f"{feedback_type}\n".encode(), 1)
    return raw.replace(
        b"Original-Mail-From: <somespammer@example.net>",
        f"Original-Mail-From: <{original_mail_from}>".encode(),
    )


@pytest.mark.parametrize("feedback_type", ["abuse", "opt-out"])
def test_a_feedback_loop_naming_our_copy_only_by_its_verp_sender_is_a_complaint(
    bounce_app, sent, feedback_type
):
    first, other = sent(2)
    raw = _feedback_loop_report(feedback_type, first.envelope_from)
    assert first.message_id.encode() not in raw
    result = receive(bounce_app, raw)  # delivered to the abuse desk's address, no tag
    assert result.stdout == f"recorded complaint for subscriber {first.subscriber_id} and applied\n"
    assert status_of(first.subscriber_id) == "unsubscribed"
    assert status_of(other.subscriber_id) == "confirmed"


def test_a_feedback_loop_with_a_forged_verp_sender_changes_nothing(bounce_app, sent):
    (copy,) = sent(1)
    forged = copy.envelope_from.replace("+", "+0", 1)
    result = receive(bounce_app, _feedback_loop_report("abuse", forged))
    assert result.stdout.startswith("unmatched")
    assert status_of(copy.subscriber_id) == "confirmed" and bounce_rows() == []


def test_an_ses_complaint_mailed_as_json_is_a_complaint_not_a_bounce(bounce_app, sent):
    (copy,) = sent(1)
    event = {
        "notificationType": "Complaint",
        "complaint": {
            "complainedRecipients": [{"emailAddress": copy.email}],
            "complaintFeedbackType": "abuse",
        },
        "mail": {"returnPath": copy.envelope_from, "source": "tips@example.org"},
    }
    body = json.dumps({"Type": "Notification", "Message": json.dumps(event)})
    headers = "From: no-reply@sns.amazonaws.com\nTo: ops@example.org\nSubject: AWS Notification"
    raw = f"{headers}\n\n{body}\n"
    result = receive(bounce_app, raw.encode())
    assert result.stdout == f"recorded complaint for subscriber {copy.subscriber_id} and applied\n"
    assert status_of(copy.subscriber_id) == "unsubscribed"


def test_a_text_only_failure_notice_with_a_clear_code_is_hard(bounce_app, sent):
    (copy,) = sent(1)
    raw = (
        f"From: postmaster@outlook.com\nTo: {copy.envelope_from}\n"
        "Subject: Undeliverable: Tip 12\nContent-Type: text/plain\n\n"
        f"Your message to {copy.email} couldn't be delivered.\n\n"
        "Remote Server returned '550 5.1.10 RESOLVER.ADR.RecipientNotFound; Recipient not "
        "found by SMTP address lookup'\n"
    ).encode()
    result = receive(bounce_app, raw)
    assert result.stdout == f"recorded hard for subscriber {copy.subscriber_id} and applied\n"
    assert status_of(copy.subscriber_id) == "bounced"
