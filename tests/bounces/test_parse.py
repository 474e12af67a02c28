"""Each fixture format reads as the notices it reports, and bad input as none at all."""

from __future__ import annotations

import os

import pytest

from newsletter.bounces.parse import MAX_INPUT, kind_for, parse
from newsletter.models import BounceKind
from tests.bounces.conftest import FIXTURES

MESSAGE_ID = "<issue-12.sub-345.0a1b2c3d@example.org>"
VERP = "bounces+d678-0123456789@example.org"
READER = "ann@reader.example"
HARD, SOFT, COMPLAINT = BounceKind.HARD, BounceKind.SOFT, BounceKind.COMPLAINT


def fixture(name: str, message_id: str = MESSAGE_ID, envelope_to: str = VERP) -> bytes:
    raw = (FIXTURES / name).read_bytes()
    raw = raw.replace(b"{message_id}", message_id.encode())
    raw = raw.replace(b"{envelope_to}", envelope_to.encode())
    return raw.replace(b"{recipient}", READER.encode())


# name: (kind, source, status code, what the diagnostic says, the recipient named)
EXPECTED = {
    "postfix_user_unknown.eml": (HARD, "dsn", "5.1.1", "User unknown in local recipient", READER),
    "postfix_delayed.eml": (None, "dsn", "4.4.1", "Connection timed out", READER),
    "gmail_no_such_user.eml": (HARD, "dsn", "5.1.1", "550-5.1.1 The email account", READER),
    "office365_recipient_not_found.eml": (
        HARD,
        "dsn",
        "5.1.10",
        "RESOLVER.ADR.RecipientNotFound",
        READER,
    ),
    "ses_dsn.eml": (HARD, "dsn", "5.1.1", "550 5.1.1 user unknown", READER),
    "mailbox_full.eml": (SOFT, "dsn", "5.2.2", "Mailbox full; quota exceeded", READER),
    "exim_failed.eml": (HARD, "flufl", "5.1.1", "No such user here", READER),
    "qmail_failed.eml": (HARD, "flufl", "5.1.1", "User unknown", READER),
    "yahoo_no_account.eml": (HARD, "flufl", "", "doesn't have a yahoo.com account", READER),
    "arf_abuse.eml": (COMPLAINT, "arf", "", "abuse report from ExampleMail", READER),
    "arf_not_spam.eml": (None, "arf", "", "not-spam report", READER),
    "never_mailed.eml": (HARD, "dsn", "5.1.1", "User unknown", "stranger@elsewhere.example"),
}


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_each_format_reads_as_one_notice_about_the_copy(name):
    kind, source, status, diagnostic, recipient = EXPECTED[name]
    (notice,) = parse(fixture(name))
    assert (notice.kind, notice.source, notice.status_code) == (kind, source, status)
    assert diagnostic in notice.diagnostic
    assert notice.recipient == recipient
    assert notice.message_id == MESSAGE_ID  # from the returned part or the quoted headers
    assert notice.envelope_to == VERP  # Delivered-To, X-Original-To, Envelope-To or To
    assert "\n" not in notice.diagnostic
    assert notice.raw.startswith(fixture(name)[:40].decode())


def test_every_fixture_has_an_expectation_and_the_placeholders():
    names = {p.name for p in FIXTURES.glob("*.eml")}
    assert names == set(EXPECTED) | {"malformed.eml"}
    for name in names:
        raw = (FIXTURES / name).read_bytes()
        assert b"{message_id}" in raw and b"{envelope_to}" in raw, name


def test_the_envelope_recipient_given_wins_over_the_headers():
    (notice,) = parse(fixture("postfix_user_unknown.eml"), envelope_to="bounces+d1-ffff@x.example")
    assert notice.envelope_to == "bounces+d1-ffff@x.example"


def test_a_tagged_delivered_to_wins_over_an_untagged_one():
    raw = fixture("ses_dsn.eml", envelope_to="bounces@example.org")
    raw = raw.replace(b"X-Original-To: bounces@example.org", f"X-Original-To: {VERP}".encode())
    (notice,) = parse(raw)
    assert notice.envelope_to == VERP


def test_a_dsn_for_several_recipients_gives_one_notice_each():
    raw = fixture("postfix_user_unknown.eml")
    block = (
        b"Final-Recipient: rfc822; bob@reader.example\n"
        b"Action: failed\nStatus: 5.2.2\nDiagnostic-Code: smtp; 552 5.2.2 over quota\n\n"
        b"Final-Recipient: rfc822; cy@reader.example\nAction: delivered\nStatus: 2.0.0\n\n"
    )
    boundary = b"\n--4Q2mTk1XYZz1qpC.1740988872/relay.example.net\nContent-Description: Undel"
    raw = raw.replace(boundary, b"\n" + block + boundary[1:], 1)
    notices = parse(raw)
    assert [(n.recipient, n.kind) for n in notices] == [
        (READER, HARD),
        ("bob@reader.example", SOFT),
        ("cy@reader.example", None),
    ]
    assert {n.message_id for n in notices} == {MESSAGE_ID}


@pytest.mark.parametrize(
    ("status", "diagnostic", "kind"),
    [
        ("5.1.1", "", HARD),
        ("5.1.10", "", HARD),
        ("5.2.1", "account disabled", HARD),
        ("5.2.2", "", SOFT),
        ("5.2.3", "", BounceKind.BLOCKED),  # our message is too big: about us
        ("5.4.4", "no such domain", HARD),
        ("5.4.7", "delivery time expired", SOFT),
        ("5.7.1", "blocked by policy", BounceKind.BLOCKED),
        ("5.3.4", "message too big", BounceKind.BLOCKED),
        ("4.2.2", "", SOFT),
        ("", "smtp; 550 5.1.1 nobody", HARD),
        ("", "smtp; 452 over quota", SOFT),
        ("", "", None),  # "failed" with no code and no words: nothing to act on, never hard
        ("5.0.0", "smtp; 550 rejected", None),  # a bare 5xx says nothing usable
        ("5.1.1", "smtp; 550 5.7.1 IP address blacklisted", BounceKind.BLOCKED),
        ("5.1.1", "smtp; 552 5.2.2 Over quota", SOFT),
        ("5.1.1", "smtp; 550 5.1.1 sender rejected", BounceKind.BLOCKED),
        ("5.0.0", "smtp; 554 5.7.1 Email address is not verified.", BounceKind.BLOCKED),
        ("5.4.7", "retry timeout exceeded", SOFT),
        ("4.7.0", "421 4.7.0 [TSS04] Messages temporarily deferred", BounceKind.BLOCKED),
        ("5.0.0", "smtp; 552 Requested mail action aborted, mailbox not found", HARD),
        ("5.0.0", "smtp; 550 5.7.1 client host blocked", BounceKind.BLOCKED),
        ("5.0.0", "smtp; 550 no such user", HARD),
        ("2.0.0", "", None),
    ],
)
def test_status_codes_say_what_happens_to_the_reader(status, diagnostic, kind):
    assert kind_for(status, diagnostic) is kind


def test_a_policy_refusal_in_a_dsn_leaves_the_reader_alone():
    raw = fixture("postfix_user_unknown.eml").replace(b"Status: 5.1.1", b"Status: 5.7.1")
    raw = raw.replace(b"550 5.1.1 <{recipient}>: Recipient address rejected:", b"550 5.7.1 x")
    raw = raw.replace(b"User unknown", b"Client host blocked")
    (notice,) = parse(raw)
    assert notice.kind is BounceKind.BLOCKED


def test_a_report_without_our_message_id_names_none():
    (notice,) = parse(fixture("yahoo_no_account.eml", message_id="<abc@elsewhere.example>"))
    assert notice.message_id == ""  # nothing of ours is quoted: only the VERP tag can match
    (notice,) = parse(fixture("ses_dsn.eml", message_id="<abc@elsewhere.example>"))
    assert notice.message_id == "<abc@elsewhere.example>"  # as the report gives it


@pytest.mark.parametrize(
    "raw",
    [
        b"",
        b"\x00" * 1000,
        os.urandom(64 * 1024),
        b"Subject: hello\n\nJust a note, no bounce at all.\n",
        b"From: x@example.com\nMIME-Version: 1.0\nContent-Type: multipart/mixed; boundary=b\n\n"
        + b"".join(
            b"--b%d\nContent-Type: multipart/mixed; boundary=b%d\n\n" % (i, i + 1)
            for i in range(3000)
        ),
        b"Content-Type: multipart/report; report-type=delivery-status; boundary=x\n\n--x\n"
        b"Content-Type: message/delivery-status\nContent-Transfer-Encoding: base64\n\n!!!!\n",
        b"Content-Type: multipart/report; report-type=feedback-report; boundary=x\n\n--x\n",
    ],
    ids=["empty", "nuls", "random", "not-a-bounce", "deep", "bad-base64", "empty-arf"],
)
def test_bad_input_gives_no_notice_and_never_raises(raw):
    notices = parse(raw)
    assert all(n.kind is None for n in notices)


def test_the_malformed_fixture_gives_nothing():
    assert parse(fixture("malformed.eml")) == []


def test_a_multi_megabyte_message_is_not_read():
    big = fixture("postfix_user_unknown.eml") + b"x" * (MAX_INPUT + 1)
    assert parse(big) == []


def test_what_a_notice_keeps_of_the_mail_is_capped_and_storable():
    raw = fixture("postfix_user_unknown.eml").replace(b"This is the mail", b"\x00\xff mail")
    raw += b"y" * 500_000
    (notice,) = parse(raw)
    assert len(notice.raw) <= 64 * 1024 and "\x00" not in notice.raw


def test_a_jmrp_report_is_a_complaint_about_the_copy_it_attaches():
    # Microsoft's junk mail reporting program: the reported mail attached whole, its
    # original recipient in a header Microsoft adds, our Message-ID in it.
    raw = (
        b"From: staff@hotmail.com\nTo: abuse@example.org\nSubject: complaint about message\n"
        b"MIME-Version: 1.0\nContent-Type: multipart/mixed; boundary=b\n\n--b\n"
        b"Content-Type: text/plain\n\nThis is an email abuse report.\n--b\n"
        b"Content-Type: message/rfc822\n\n"
        b"X-HmXmrOriginalRecipient: <reader@outlook.example>\n"
        b"Return-Path: <bounces+d7-abc@example.org>\n"
        + f"Message-ID: {MESSAGE_ID}\n".encode()
        + b"Subject: Tip 12\n\nbody\n--b--\n"
    )
    (notice,) = parse(raw)
    assert (notice.kind, notice.source, notice.recipient) == (
        BounceKind.COMPLAINT,
        "jmrp",
        "reader@outlook.example",
    )
    assert notice.message_id == MESSAGE_ID
    assert notice.original_mail_from == "bounces+d7-abc@example.org"


def test_a_delay_warning_in_plain_text_is_nothing():
    raw = (
        b"From: MAILER-DAEMON@mx.example\nSubject: Warning: message delayed 24 hours\n\n"
        b"This is a warning only. 451 4.4.1 host not responding; will retry for 4 days.\n"
    )
    assert all(n.kind is None for n in parse(raw))
