"""Read a bounce or complaint mail into notices: one per recipient it reports.

RFC 3464 delivery status notifications and RFC 5965 (ARF) complaint reports are read with
the stdlib ``email`` package, field by field. Everything else (Exim's and qmail's plain-text
bounces, old Postfix, Yahoo, Microsoft) goes to flufl.bounce, Mailman's detectors, which
know the non-standard formats; the copy's Message-ID is then looked for in the quoted text.

Nothing here trusts what it reads: the notices only say what the mail claims, and
``intake.apply_notice`` believes them only for a copy named by a signed VERP tag or Message-ID.
Bad input of any kind (empty, binary, truncated, a few megabytes) gives no notice at all.
"""

from __future__ import annotations

import email
import html
import logging
import re
from collections.abc import Iterable, Iterator
from dataclasses import replace
from email.message import Message
from email.parser import HeaderParser
from email.policy import compat32
from email.utils import getaddresses, parseaddr

from flufl.bounce import all_failures

from newsletter.bounces.intake import Notice
from newsletter.bounces.kinds import KINDS, OUR_MESSAGE_ID, kind_for, read_failure
from newsletter.bounces.providers import ses_mail_notices
from newsletter.mail.classify import REPORT, Outcome, Reading, enhanced_in, read_answer
from newsletter.models import MAX_EMAIL_LENGTH, BounceKind

__all__ = ["OUR_MESSAGE_ID", "enhanced_in", "kind_for", "parse"]

log = logging.getLogger(__name__)

MAX_INPUT = 10 * 1024 * 1024  # a real notification is a few kB; past this it is not one
# What is read of a mail: a report's own parts come first (RFC 3464 and 5965 put the
# returned message last), and a plain-text bounce says what failed before it quotes us.
# flufl's detectors run ~40 patterns over every line, so they see less.
PARSE_HEAD = 1024 * 1024
FLUFL_HEAD = 128 * 1024
RAW_KEEP = 64 * 1024  # what a notice carries of the mail, for editors to read

_ENHANCED = re.compile(r"(?<![0-9.])([245])\.([0-9]{1,3})\.([0-9]{1,3})(?![0-9])")
_REPLY_CODE = re.compile(r"(?<![0-9.])([245][0-9][0-9])(?=[\s:-])")
# Where a plain-text bounce starts quoting what we sent: codes past this are ours, not its.
_QUOTE_START = re.compile(
    r"^\s*-{2,}.*(original message|copy of the message|returned message|message follows"
    r"|message headers|forwarded message|returned mail)|^\s*original message follows",
    re.IGNORECASE | re.MULTILINE,
)

COMPLAINT_TYPES = frozenset({"abuse", "fraud", "other", "opt-out"})
# "error": OpenSMTPD's non-standard word; "failure": old Sun and Netscape servers'
FAILED_ACTIONS = frozenset({"failed", "error", "failure"})
# A mail that says it is a failure notice, by its sender or its subject (text-only notices).
_NOTICE_FROM = re.compile(r"mailer-daemon|postmaster|mail delivery", re.IGNORECASE)
_NOTICE_SUBJECT = re.compile(
    r"undeliver|delivery (status notification|failure|has failed|failed)|returned mail"
    r"|failure notice|could not be delivered|non-delivery|mail delivery failed|mail error"
    r"|error during delivery|failed mail",
    re.IGNORECASE,
)
_TAG = re.compile(r"<[^>]{0,1000}>")
_QUOTED_HEADER = re.compile(
    r"^\s*(received|from|to|cc|subject|sent|date|message-id|return-path|x-[\w-]+|content-[\w-]+"
    r"|mime-version|in-reply-to|references|reply-to|sender|delivered-to|precedence|list-[\w-]+"
    r"|errors-to)\s*:",
    re.IGNORECASE,
)
_DELAY = re.compile(
    r"delayed|warning|not yet been delivered|still being retried"
    r"|will (continue to )?(retry|attempt)",
    re.IGNORECASE,
)
_ADDRESS = re.compile(r"[\w.+'-]{1,64}@[\w-]{1,63}(?:\.[\w-]{1,63})+")
_DSN_TYPES = frozenset({"message/delivery-status", "message/global-delivery-status"})
_ARF_TYPES = frozenset({"message/feedback-report"})
_ORIGINAL_TYPES = frozenset({"message/rfc822", "message/global", "text/rfc822-headers"})


def parse(raw: bytes, envelope_to: str = "") -> list[Notice]:
    """Return one notice per recipient the mail reports on; [] for anything unreadable."""
    if not raw or len(raw) > MAX_INPUT:
        log.info("notification dropped: %d bytes", len(raw or b""))
        return []
    try:
        return _parse(raw[:PARSE_HEAD], envelope_to)
    except Exception as exc:  # whatever a hostile or broken mail trips over: dropped, logged
        log.warning("unreadable notification dropped (%d bytes): %r", len(raw), exc)
        return []


def _parse(raw: bytes, envelope_to: str) -> list[Notice]:
    msg = email.message_from_bytes(raw, policy=compat32)
    to = envelope_to.strip() or envelope_recipient(msg)
    notices: list[Notice] = []
    types = {part.get_content_type() for part in msg.walk()}
    report = str(msg.get_param("report-type", "") or "").lower()
    if report == "feedback-report" or types & _ARF_TYPES:
        notices = [_arf(msg, raw)]
    elif report == "delivery-status" or types & _DSN_TYPES:
        notices = list(_dsn(msg, raw))
    elif (jmrp := _jmrp(msg, raw)) is not None:
        notices = [jmrp]
    elif msg.get_content_maintype() == "text":  # an SES notification mailed as JSON?
        notices = ses_mail_notices(_body_text(msg))
    if not notices:
        short = msg if len(raw) <= FLUFL_HEAD else None
        notices = list(_flufl(short or email.message_from_bytes(raw[:FLUFL_HEAD]), raw))
    if not notices:
        notices = _text_only(msg, raw)
    kept = readable(raw[:RAW_KEEP])
    return [replace(n, envelope_to=to, raw=kept) for n in notices]


def readable(data: bytes) -> str:
    """Return mail bytes as text a database column and a page can hold."""
    return data.decode("utf-8", errors="replace").replace("\x00", "\ufffd")


def envelope_recipient(msg: Message) -> str:
    """Return the address the mail was delivered to, from the headers the MTA added.

    Delivered-To, X-Original-To, Envelope-To (Exim's), then To. A rewrite on the way (an
    alias) may have dropped the tag from one of them, so the first with a ``+tag`` wins.
    """
    found = []
    for header in ("Delivered-To", "X-Original-To", "Envelope-To", "To"):
        values = [str(v) for v in msg.get_all(header, [])]
        found += [addr for _name, addr in getaddresses(values) if "@" in addr]
    tagged = [addr for addr in found if "+" in addr.partition("@")[0]]
    return (tagged or found or [""])[0][:MAX_EMAIL_LENGTH]


# --- RFC 3464 ---------------------------------------------------------------------------------


def _dsn(msg: Message, raw: bytes) -> Iterator[Notice]:
    message_id = _original_message_id(msg, raw)
    words: str | None = None  # the notice's text part, read only when a block says nothing
    for part in msg.walk():
        if part.get_content_type() not in _DSN_TYPES:
            continue
        # Only the per-recipient blocks name a recipient; the first is about the message.
        for block in _field_blocks(part):
            recipient = _address_field(block, "Original-Recipient") or _address_field(
                block, "Final-Recipient"
            )
            if not recipient:
                continue
            action = _field(block, "Action").lower().split(" ", 1)[0]
            status_field = _field(block, "Status")
            status = enhanced_in(status_field)
            # Some servers put their answer in Status ("553 Exceeded maximum …").
            diagnostic = _typed_value(_field(block, "Diagnostic-Code")) or (
                status_field if status_field != status else ""
            )
            kind = None
            if action in FAILED_ACTIONS:
                reading = read_failure(status, diagnostic)
                if reading.outcome is Outcome.NOTHING:  # gateways put the reason in the text
                    words = _notification_text(msg) if words is None else words
                    reading = _read_notice(words, "")
                    # That text may list every error it knows ("unknown user  Bad address"):
                    # it can say the mailbox is full or we were refused, never that the
                    # address is dead, which only the recipient's own block may say.
                    if reading.outcome is Outcome.HARD:
                        reading = Reading(Outcome.NOTHING, "no usable code for this recipient")
                kind = KINDS[reading.outcome]
            yield Notice(
                kind=kind,
                source="dsn",
                diagnostic=diagnostic[:500] or f"{action or 'no action'} {status}".strip(),
                status_code=status or enhanced_in(diagnostic),
                recipient=recipient,
                message_id=message_id,
            )


def _field_blocks(part: Message) -> Iterator[Message]:
    """Yield the header blocks of a delivery-status part, however the parser left them."""
    payload = part.get_payload()
    if part.get_content_type() == "message/delivery-status" and isinstance(payload, list):
        yield from (p for p in payload if isinstance(p, Message))
        return
    # message/global-delivery-status, or a part sent base64: the blocks are text to split.
    if isinstance(payload, list):
        text = "".join(p.as_string() for p in payload if isinstance(p, Message))
    else:
        data = part.get_payload(decode=True)
        text = readable(data) if isinstance(data, bytes) else str(payload)
    for chunk in re.split(r"\r?\n[ \t]*\r?\n", text):
        if chunk.strip():
            yield HeaderParser(policy=compat32).parsestr(chunk.strip() + "\n")


def _field(block: Message, name: str) -> str:
    value = block.get(name)
    if value is None:
        return ""
    return " ".join(str(value).split())


def _typed_value(value: str) -> str:
    """Return ``rfc822; a@b`` or ``smtp; 550 …`` without its type, as one line."""
    kind, sep, rest = value.partition(";")
    return rest.strip() if sep and re.fullmatch(r"[A-Za-z0-9-]+", kind.strip()) else value.strip()


def _address_field(block: Message, name: str) -> str:
    value = _typed_value(_field(block, name))
    return parseaddr(value)[1][:MAX_EMAIL_LENGTH] if "@" in value else ""


# --- RFC 5965 (ARF) ---------------------------------------------------------------------------


def _arf(msg: Message, raw: bytes) -> Notice:
    report = next((p for p in msg.walk() if p.get_content_type() in _ARF_TYPES), None)
    fields = next(_field_blocks(report), Message()) if report is not None else Message()
    feedback = _field(fields, "Feedback-Type").lower()
    agent = _field(fields, "User-Agent") or _field(fields, "Reporting-MTA")
    recipient = _address_field(fields, "Original-Rcpt-To") or _address_field(
        fields, "Removal-Recipient"
    )
    return Notice(
        kind=BounceKind.COMPLAINT if feedback in COMPLAINT_TYPES else None,
        source="arf",
        diagnostic=f"{feedback or 'untyped'} report" + (f" from {agent}" if agent else ""),
        recipient=recipient,
        message_id=_original_message_id(msg, raw),
        # A feedback loop may name our copy only by the envelope sender it was sent with.
        original_mail_from=_address_field(fields, "Original-Mail-From"),
    )


def _jmrp(msg: Message, raw: bytes) -> Notice | None:
    """Read Microsoft's JMRP complaint: the reported mail attached, marked by its headers."""
    for part in msg.walk():
        if part.get_content_type() != "message/rfc822":
            continue
        inner = part.get_payload()
        original = inner[0] if isinstance(inner, list) and inner else None
        if not isinstance(original, Message):
            continue
        recipient = str(original.get("X-HmXmrOriginalRecipient", "")).strip()
        if recipient:
            return Notice(
                kind=BounceKind.COMPLAINT,
                source="jmrp",
                diagnostic="complaint from Microsoft's junk mail reporting program",
                recipient=parseaddr(recipient)[1][:MAX_EMAIL_LENGTH],
                message_id=_original_message_id(msg, raw),
                original_mail_from=_return_path(original),
            )
    return None


def _return_path(original: Message) -> str:
    return parseaddr(str(original.get("Return-Path", "")))[1][:MAX_EMAIL_LENGTH]


def _body_text(msg: Message) -> str:
    data = msg.get_payload(decode=True)
    return readable(data[:RAW_KEEP]) if isinstance(data, bytes) else ""


# --- everything else: flufl.bounce --------------------------------------------------------------


def _flufl(msg: Message, raw: bytes) -> Iterator[Notice]:
    # flufl logs a line per detector per mail, and a traceback for each mail a detector
    # trips over (which parse() reports in one line): neither belongs in our logs.
    logging.getLogger("flufl.bounce").setLevel(logging.CRITICAL)
    temporary, permanent = all_failures(msg)
    if not temporary and not permanent:
        return
    notification = _notification_text(msg)
    status = enhanced_in(notification)
    diagnostic = _diagnostic_line(notification)
    reading = _read_notice(notification, diagnostic)
    message_id = _original_message_id(msg, raw)
    for failures, warning in ((permanent, False), (temporary, True)):
        for address in sorted(failures):
            kind = None if warning else KINDS[reading.outcome]  # a delay changes nothing
            yield Notice(
                kind=kind,
                source="flufl",
                diagnostic=diagnostic[:500],
                status_code=status,
                recipient=address.decode("ascii", errors="replace")[:MAX_EMAIL_LENGTH],
                message_id=message_id,
            )


def _read_notice(notification: str, diagnostic: str) -> Reading:
    """Read a plain-text notice: its answer line first, then all its own words."""
    reading = read_failure(enhanced_in(diagnostic), diagnostic)
    if reading.outcome is Outcome.NOTHING:
        words = _own_words(notification)
        code = 550 if not enhanced_in(words).startswith("4") else 450
        reading = read_answer(code, enhanced_in(words), REPORT, words)
    return reading


def _own_words(notification: str) -> str:
    """Return what a notice says in its own words: not the headers of ours it quotes."""
    kept = []
    for line in notification.splitlines():
        if _QUOTED_HEADER.match(line):
            if line.lstrip().lower().startswith("received:"):
                break  # the returned mail's headers begin: the rest is ours
            continue  # "Subject: …" of our mail, named in the notice
        if not line.lstrip().startswith((">", "|")):
            kept.append(line)
    return "\n".join(kept)


def _text_only(msg: Message, raw: bytes) -> list[Notice]:
    """Read a failure notice no detector knows (Office 365's text part): its words alone."""
    subject, sender = str(msg.get("Subject", "")), str(msg.get("From", ""))
    if not (_NOTICE_SUBJECT.search(subject) or _NOTICE_FROM.search(sender)):
        return []
    notification = _notification_text(msg)
    if _DELAY.search(subject) or _DELAY.search(notification):
        return []  # a delay warning changes nothing
    diagnostic = _diagnostic_line(notification)
    reading = _read_notice(notification, diagnostic)
    if reading.outcome is Outcome.NOTHING:
        return []
    named = _ADDRESS.search(diagnostic) or _ADDRESS.search(notification)
    return [
        Notice(
            kind=KINDS[reading.outcome],
            source="text",
            diagnostic=(diagnostic or reading.why)[:500],
            status_code=enhanced_in(notification),
            recipient=named.group(0)[:MAX_EMAIL_LENGTH] if named else "",
            message_id=_original_message_id(msg, raw),
        )
    ]


def _notification_text(msg: Message) -> str:
    """Return the bounce's own words: its text parts up to where it quotes the original."""
    texts = []
    htmls = []
    for part in _own_parts(msg):
        if part.get_content_maintype() == "text":
            data = part.get_payload(decode=True)
            if not isinstance(data, bytes):
                continue
            if part.get_content_subtype() == "html":
                htmls.append(_TAG.sub(" ", html.unescape(readable(data[:RAW_KEEP]))))
            else:
                texts.append(readable(data[:RAW_KEEP]))
    texts = texts or htmls  # an HTML-only notice (old Exchange) is read without its tags
    text = "\n".join(texts)
    quoted = _QUOTE_START.search(text)
    return text[: quoted.start()] if quoted else text


def _own_parts(msg: Message) -> Iterator[Message]:
    """Yield the leaf parts of a mail, but not those of a message it attaches."""
    if msg.get_content_type() in _ORIGINAL_TYPES:
        return
    payload = msg.get_payload()
    if isinstance(payload, list):
        for part in payload:
            if isinstance(part, Message):
                yield from _own_parts(part)
    else:
        yield msg


def _diagnostic_line(text: str) -> str:
    """Return the line of a plain-text bounce that gives the remote server's answer."""
    for line in text.splitlines():
        if _ENHANCED.search(line) or _REPLY_CODE.match(line.strip()):
            return " ".join(line.split())
    return ""


# --- the original message -------------------------------------------------------------------


def _original_message_id(msg: Message, raw: bytes) -> str:
    """Return the Message-ID of the mail a report is about: from the part that returns it,
    else the first of ours quoted anywhere in the report."""
    for part in msg.walk():
        ctype = part.get_content_type()
        if ctype not in _ORIGINAL_TYPES:
            continue
        found = _message_id_of(part)
        if found:
            return found
    quoted = OUR_MESSAGE_ID.search(raw)
    return quoted.group(0).decode("ascii") if quoted else ""


def _message_id_of(part: Message) -> str:
    payload = part.get_payload()
    headers: Iterable[Message] = []
    if isinstance(payload, list):
        headers = [p for p in payload if isinstance(p, Message)]
    else:
        data = part.get_payload(decode=True)
        text = readable(data) if isinstance(data, bytes) else str(payload)
        headers = [HeaderParser(policy=compat32).parsestr(text, headersonly=True)]
    for original in headers:
        value = " ".join(str(original.get("Message-ID", "")).split())
        if value:
            found = OUR_MESSAGE_ID.search(value.encode("utf-8", errors="replace"))
            return found.group(0).decode("ascii") if found else value[:998]
    return ""
