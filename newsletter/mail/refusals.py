"""What an SMTP refusal means: one table from (stage, reply code, RFC 3463 code) to a verdict.

The same "550" means "no such reader" after RCPT and "you may not send" after MAIL FROM, so
the stage of the transaction decides as much as the code. The enhanced status code
(``class.subject.detail``, RFC 3463) says more than the reply code where the server gives
one: subject 1 is the address, 2 the mailbox, 3 the mail system, 4 the network and routing,
5 the protocol, 6 the content, 7 security and policy.
"""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass


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
    BLOCKED = "blocked"  # that domain refuses us: the copy fails, the reader is left alone
    RETRY = "retry"  # try again later; still refused after every retry: a soft bounce
    RELAY = "relay"  # the relay refuses us: nobody bounced, the send pauses, copies wait


_SESSION = frozenset({Stage.CONNECT, Stage.EHLO, Stage.AUTH, Stage.MAIL})
_MESSAGE = frozenset({Stage.DATA, Stage.END})
_ANY = frozenset(Stage)


@dataclass(frozen=True)
class Rule:
    """One row: where the answer came, which reply codes, which enhanced codes (a regex)."""

    stages: frozenset[Stage]
    codes: str  # a regex over the three-digit reply code
    enhanced: str | None  # a regex over the enhanced code; "" = the server gave none
    verdict: Verdict
    why: str

    def matches(self, stage: Stage, code: int, enhanced: str) -> bool:
        """Return whether this row applies to the answer."""
        if stage not in self.stages or not re.fullmatch(self.codes, str(code)):
            return False
        return self.enhanced is None or re.fullmatch(self.enhanced, enhanced) is not None


# First match wins. README's "What every kind of refusal does" is this table in words, and
# tests/mail/test_refusals.py checks it row by row.
RULES: tuple[Rule, ...] = (
    Rule(_SESSION, r"5\d\d", None, Verdict.RELAY, "the relay refused the session or our sender"),
    Rule(_SESSION, r"4\d\d", r"4\.7\.\d+", Verdict.RELAY, "the relay limits or blocks us"),
    Rule(_SESSION, r"4\d\d", None, Verdict.RETRY, "the relay is busy"),
    Rule(_ANY, r"5\d\d", r"5\.[346]\.\d+", Verdict.RELAY, "a system, network or content answer"),
    Rule(_ANY, r"5\d\d", r"5\.2\.3", Verdict.RELAY, "the message is too big for the relay"),
    Rule(_MESSAGE, r"[45]\d\d", r"[45]\.7\.\d+", Verdict.RELAY, "policy refusal of the message"),
    Rule(frozenset({Stage.RCPT}), r"5\d\d", r"5\.7\.\d+", Verdict.BLOCKED, "the domain blocks us"),
    Rule(frozenset({Stage.RCPT}), r"4\d\d", r"4\.7\.\d+", Verdict.RETRY, "greylisted: later"),
    Rule(_ANY - _SESSION, r"5\d\d", r"5\.1\.\d+|5\.2\.1", Verdict.HARD, "the address is bad"),
    Rule(_ANY - _SESSION, r"5\d\d", r"5\.2\.2", Verdict.SOFT, "the mailbox is full"),
    Rule(_ANY - _SESSION, r"5\d\d", r"5\.2\.\d+", Verdict.SOFT, "the mailbox cannot take it now"),
    Rule(frozenset({Stage.RCPT}), r"55[013]", r"|5\.0\.0|5\.5\.0", Verdict.HARD, "no such mailbox"),
    Rule(frozenset({Stage.RCPT}), r"552", r"", Verdict.SOFT, "the mailbox is over its quota"),
    Rule(frozenset({Stage.RCPT}), r"5\d\d", None, Verdict.BLOCKED, "refused for this address"),
    Rule(_MESSAGE, r"5\d\d", None, Verdict.RELAY, "the relay refused the message itself"),
    Rule(_ANY, r"4\d\d", None, Verdict.RETRY, "a temporary answer"),
    Rule(_ANY, r"\d+", None, Verdict.RETRY, "an answer outside SMTP's codes"),
)

_ENHANCED = re.compile(r"^([245])\.(\d{1,3})\.(\d{1,3})\b")


def enhanced_code(text: str) -> str:
    """Return the RFC 3463 code at the start of a reply's text ("5.1.1"), or ""."""
    found = _ENHANCED.match(text.strip())
    return ".".join(found.groups()) if found else ""


def judge(stage: Stage, code: int, text: str) -> tuple[Verdict, str]:
    """Return the verdict on one refusal and the table row's reason."""
    enhanced = enhanced_code(text)
    if enhanced and enhanced[0] != str(code)[0]:
        enhanced = ""  # "550 4.2.2": the two disagree; trust the reply code alone
    for rule in RULES:
        if rule.matches(stage, code, enhanced):
            return rule.verdict, rule.why
    return Verdict.RETRY, "unclassified"
