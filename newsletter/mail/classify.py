"""What a refusal or a bounce report means, read one way for both: at send time and later.

An answer is read from four things: the basic reply code (4xx/5xx), the RFC 3463 enhanced
code (``class.subject.detail``), where it came (a stage of the SMTP session, or a report
mailed back later) and the diagnostic text. The text is read first, through a table of
phrases real servers use, because servers put the wrong code on their answers all the time
("550 5.1.1 sender rejected", "552 … mailbox not found"); the codes decide only when the
text says nothing known.

The outcomes:

- ``HARD``: the address is dead. Only a clear "no such user" (in words, or a 5.1.1-style
  code with nothing else said) is hard; a vague or unknown failure never is.
- ``SOFT``: temporary for that reader (a full mailbox, an account over quota, a delivery
  that expired without a word about us).
- ``ABOUT_US``: a refusal of our server, domain, content or rate (policy, spam, blocklists,
  DMARC/SPF/DKIM, reverse DNS, throttling, viruses, our sender address). Never a bounce
  against the reader.
- ``COMPLAINT``: the reader reported the mail (set by the report readers, not by this table).
- ``NOTHING``: nothing to act on: a delay, a success, or a failure that says nothing usable.
"""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass


class Outcome(enum.StrEnum):
    """What an answer means for the reader and for us."""

    HARD = "hard"
    SOFT = "soft"
    ABOUT_US = "about_us"
    COMPLAINT = "complaint"
    NOTHING = "nothing"


REPORT = "report"  # the stage of an answer read from a mailed-back report


def _words(*phrases: str) -> re.Pattern[str]:
    return re.compile("|".join(phrases), re.IGNORECASE)


# First match wins, so the order matters: an answer naming a blocklist and "user unknown"
# is about us; "mailbox not found" beats its "552" code.
PHRASES: tuple[tuple[Outcome, str, re.Pattern[str]], ...] = (
    # Per-reader answers that look like policy but are not about us (Exchange Online's
    # directory check): never pause a send for them, never bounce the reader either.
    (
        Outcome.NOTHING,
        "the recipient's domain refuses this address",
        _words(r"recipient address rejected: access denied", r"RESOLVER\.RST\.NotAuthorized"),
    ),
    (Outcome.SOFT, "greylisted: that mailbox asks us to come back later", _words(r"greylist")),
    (
        Outcome.ABOUT_US,
        "they limit our sending rate",
        _words(
            r"\bTS[SU]0\d",  # Yahoo's throttling codes
            r"4\.7\.650",  # Outlook: our IP's reputation, throttled
            r"4\.7\.28",  # Gmail: rate limited
            r"receiving mail at a rate",
            r"rate limit",
            r"too many (messages|recipients|connections|mails)",
            r"throttl",
            r"sending (quota|limit)",
            r"try again later.{0,40}(rate|volume)",
            r"unusual rate",
            r"exceeded the (rate|message) limit",
        ),
    ),
    (
        Outcome.ABOUT_US,
        "they refuse our sender address or domain",
        _words(
            r"sender (address )?rejected",
            r"sender verify failed",
            r"sender verification",
            r"mail ?from domain",
            r"email address is not verified",  # Amazon SES: our sender
            r"SendAsDenied",
            r"administrative prohibition",
            r"anti-spoofing",
            r"sender (domain|address) (is )?(not|un)",
            r"relay(ing)? (access )?(denied|not permitted)",
            r"unable to relay",
            r"not allowed to send",
            r"not accepting (mail|messages) from",
        ),
    ),
    (
        Outcome.ABOUT_US,
        "our server or domain is on a blocklist",
        _words(
            r"spamhaus",
            r"\bdnsbl\b",
            r"\brbl\b",
            r"black ?list",
            r"block ?list",
            r"(?<!not )listed (at|in|on|by)",
            r"barracuda",
            r"spamcop",
            r"client host .{0,40}(blocked|rejected)",
            r"\bblocked\b",
            r"poor reputation",
        ),
    ),
    (
        Outcome.ABOUT_US,
        "our authentication failed (DMARC, SPF, DKIM, reverse DNS)",
        _words(
            r"\bdmarc\b",
            r"\bspf\b",
            r"\bdkim\b",
            r"reverse dns",
            r"\bptr\b",
            r"rdns",
            r"not authenticated",
            r"authentication (failed|required)",
        ),
    ),
    (
        Outcome.ABOUT_US,
        "they refuse our content",
        _words(
            r"\bspam\b",
            r"\bvirus(es)?\b",
            r"malware",
            r"\bphish",
            r"content (rejected|refused|filter)",
            r"message (content )?(rejected|refused) (as|due)",
            r"policy",
            r"message (is )?too (big|large)",
            r"exceeds? (the )?(fixed |maximum )?(message )?size",
            r"maximum (incoming |inbound )?message size",
        ),
    ),
    (
        Outcome.NOTHING,
        "a mail loop at their end",
        _words(r"too many hops", r"message looping|mail loop|loop detected|forwarding loop"),
    ),
    (
        Outcome.SOFT,
        "the mailbox is full",
        _words(
            r"(mailbox|mailfolder|inbox|account|disk|storage) (is )?(full|over)",
            r"over (disk |the |their |his |her )?quota",
            r"quota (exceeded|violation|reached)",
            r"exceed(s|ed|ing)? (the |their |his |her |mailbox |disk )*quota",
            r"\bdisk ?quota\b",
            r"\binsufficient (disk |system )?(space|storage)",
            r"full mailbox",
            r"mail ?box space",
        ),
    ),
    (
        Outcome.HARD,
        "no such user",
        _words(
            r"\buser unknown",
            r"unknown (user|recipient|or illegal user|local part|mailbox)",
            r"recipient unknown",
            r"addressee unknown",
            r"no such (user|mailbox|recipient|address|person|account)",
            r"no mailbox here",
            r"\bno mailbox\b",
            r"mailbox (not found|does not exist|unavailable or not local)",
            r"(account|address|mailbox|user|recipient) (that you tried to reach )?"
            r"(does not|doesn't|did not) exist",
            r"RecipientNotFound",
            r"doesn't have an? [\w.-]+ account",
            r"invalid (mailbox|recipient|final delivery userid|address|user)",
            r"not (a )?(valid|known) (user|recipient|mailbox)",
            r"user not (found|local|known)",
            r"(recipient|user) name is not recognized",
            r"not listed in .{0,30}directory",
            r"account (has been )?(disabled|discontinued|deactivated|closed|terminated)",
            r"mailbox name not allowed",
            r"bad destination mailbox",
            r"no longer valid",
            r"(e-?mail )?address is (wrong|invalid)",
            r"utilisateur (inconnu|non recens)",
            r"no matches to nameserver query",
            r"final (e-?mail )?delivery point",
            r"did not (exactly )?match an? .{0,30}address",
            r"no such domain",
            r"domain (name )?(does not exist|not found)",
            r"host (or domain name )?not found(?!,? try again)",
            r"unknown host",
        ),
    ),
    (
        Outcome.SOFT,
        "the delivery expired",
        _words(
            r"retry time(out)? (exceeded|reached|expired)",
            r"delivery time expired",
            r"maximum delivery attempts",
            r"message expired",
            r"too long in (the )?queue",
            r"could not be delivered within",
            r"giving up",
            r"failed \d+ attempts",
            r"not (been )?collected",
            r"queue period",
            r"not delivered within",
            r"aborted after",
        ),
    ),
)

# The enhanced codes, read when the text says nothing known: (subject.detail regex, outcome).
CODES: tuple[tuple[str, Outcome, str], ...] = (
    (r"1\.(1|10|2|3|6)", Outcome.HARD, "the address is bad"),
    (r"1\.(0|7|8)", Outcome.ABOUT_US, "our sender address is refused"),
    (r"2\.1", Outcome.HARD, "the mailbox is disabled"),
    (r"2\.3", Outcome.ABOUT_US, "the message is too big"),
    (r"2\.\d+", Outcome.SOFT, "the mailbox cannot take it now"),
    (r"3\.4", Outcome.ABOUT_US, "the message is too big"),
    (r"4\.(5|6)", Outcome.ABOUT_US, "a sending quota or a loop: about us"),
    (r"4\.7", Outcome.SOFT, "the delivery expired"),
    (r"6\.\d+", Outcome.ABOUT_US, "they refuse the content"),
    (r"7\.\d+", Outcome.ABOUT_US, "a policy refusal of us"),
)

_ADDRESS = re.compile(r"[^\s<>()\[\]\"',;:]+@[^\s<>()\[\]\"',;:]+")
_ENHANCED = re.compile(r"(?<![0-9.])([245])\.([0-9]{1,3})\.([0-9]{1,3})(?![0-9])")
_REPLY = re.compile(r"(?<![0-9.])([245][0-9][0-9])(?=[\s:-]|$)")


@dataclass(frozen=True)
class Reading:
    """What an answer means, and why (the phrase or code row that decided)."""

    outcome: Outcome
    why: str
    enhanced: str = ""


def enhanced_in(text: str) -> str:
    """Return the first RFC 3463 status code in ``text`` ("5.1.1"), or ""."""
    found = _ENHANCED.search(text)
    return ".".join(found.groups()) if found else ""


def reply_code_in(text: str) -> int:
    """Return the first three-digit SMTP reply code in ``text``, or 0."""
    found = _REPLY.search(text)
    return int(found.group(1)) if found else 0


def read_answer(code: int, enhanced: str, stage: str, text: str) -> Reading:
    """Read one answer: ``code`` 0 and ``enhanced`` "" when the source gave none.

    ``stage`` is a ``refusals.Stage`` value or ``REPORT``. At send time a temporary (4xx)
    answer is read the same way; the caller decides what "soft for now" means for the copy.
    """
    klass = str(code)[0] if code else (enhanced[:1] or "")
    # Addresses say nothing ("ultravirus2001@…" is no virus); lines wrap anywhere.
    text = " ".join(_ADDRESS.sub(" ", text).split())
    if klass == "2":
        return Reading(Outcome.NOTHING, "a success", enhanced)
    for outcome, why, pattern in PHRASES:
        if pattern.search(text):
            if outcome is Outcome.HARD and klass == "4":
                outcome, why = Outcome.SOFT, f"{why}, for now"
            return Reading(outcome, why, enhanced)
    if enhanced:
        subject_detail = enhanced.split(".", 1)[1]
        for code_pattern, outcome, why in CODES:
            if re.fullmatch(code_pattern, subject_detail):
                if outcome is Outcome.HARD and klass == "4":
                    outcome = Outcome.SOFT
                return Reading(outcome, why, enhanced)
    if stage in ("connect", "ehlo", "auth", "mail"):
        return Reading(Outcome.ABOUT_US, "the relay refused our session or sender", enhanced)
    if code == 552:
        return Reading(Outcome.SOFT, "the mailbox is over its quota", enhanced)
    if stage == "rcpt" and code in (550, 551, 553) and not enhanced:
        # A bare refusal of the recipient itself, with no word about us: the receiving
        # server says this address is not one it takes (SPEC: "a plain 550/551/553 to RCPT").
        return Reading(Outcome.HARD, "the receiving server refused this recipient", enhanced)
    return Reading(Outcome.NOTHING, "no usable code and no known wording", enhanced)
