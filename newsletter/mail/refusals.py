"""What an SMTP refusal does to the copy in hand: the classification, applied while sending.

``mail.classify`` reads the answer (code, enhanced code, stage, text) into an outcome, the same
reading a bounce report gets later; this module turns the outcome into what the send does:
fail the copy and bounce the reader, retry later, or pause the send and keep the copy.
"""

from __future__ import annotations

import enum
import re

from newsletter.mail.classify import Outcome, read_answer


class Stage(enum.StrEnum):
    """Where in the SMTP session the answer came."""

    CONNECT = "connect"  # the greeting, or the TCP/TLS connection itself
    EHLO = "ehlo"  # EHLO/HELO and STARTTLS
    AUTH = "auth"
    MAIL = "mail"  # MAIL FROM
    RCPT = "rcpt"  # RCPT TO
    DATA = "data"  # the DATA command
    END = "end"  # the answer after the message's final dot


class Verdict(enum.StrEnum):
    """What the refusal does to the copy and to its reader."""

    HARD = "hard"  # the reader's address is bad: the copy fails, the reader is bounced
    SOFT = "soft"  # the mailbox is full: the copy fails, one soft bounce is counted
    BLOCKED = "blocked"  # refused for an unclear reason: the copy fails, the reader is left alone
    RETRY = "retry"  # try again later; still refused after every retry: a soft bounce
    THROTTLED = "throttled"  # they limit us for now: retried later, never a bounce
    RELAY = "relay"  # the relay refuses us: nobody bounced, the send pauses, copies wait
    # The relay cannot take mail now (down, busy, no answer, a "not now" before any reader
    # is named): nobody's copy counts a try, the whole send waits and goes on by itself.
    WAIT = "wait"


_SESSION = frozenset({Stage.CONNECT, Stage.EHLO, Stage.AUTH, Stage.MAIL})
_MESSAGE = frozenset({Stage.DATA, Stage.END})

_ENHANCED = re.compile(r"^([245])\.(\d{1,3})\.(\d{1,3})\b")


def enhanced_code(text: str) -> str:
    """Return the RFC 3463 code at the start of a reply's text ("5.1.1"), or ""."""
    found = _ENHANCED.match(text.strip())
    return ".".join(found.groups()) if found else ""


def judge(stage: Stage, code: int, text: str) -> tuple[Verdict, str]:
    """Return the verdict on one refusal and why.

    README's "What every kind of refusal does" is this in words; tests/mail/test_refusals.py
    holds it to the real providers' answers, stage by stage.
    """
    enhanced = enhanced_code(text)
    if enhanced and enhanced[0] != str(code)[0]:
        enhanced = ""  # "550 4.2.2": the two disagree; trust the reply code alone
    if not 400 <= code < 600:
        return Verdict.RETRY, "an answer outside SMTP's codes"
    reading = read_answer(code, enhanced, stage.value, text)
    temporary = code < 500
    if stage in _SESSION:
        # SPEC: a quota or rate answer of the relay to us (4.7.x) pauses the send with the
        # answer as its reason, as a refusal does; any other "not now" is waited out.
        if not temporary or reading.enhanced.startswith("4.7."):
            return Verdict.RELAY, f"the relay refused us: {reading.why}"
        return Verdict.WAIT, f"the relay cannot take mail now: {reading.why}"
    outcome = reading.outcome
    if outcome is Outcome.ABOUT_US:
        return (Verdict.THROTTLED if temporary else Verdict.RELAY), reading.why
    if temporary:
        return Verdict.RETRY, reading.why
    if outcome is Outcome.HARD:
        return Verdict.HARD, reading.why
    if outcome is Outcome.SOFT:
        return Verdict.SOFT, reading.why
    if stage in _MESSAGE:
        return Verdict.RELAY, "the message itself was refused, for no stated reason"
    return Verdict.BLOCKED, reading.why
