"""What a report's status and diagnostic say about the reader: ``mail.classify``, for reports.

Every way a report arrives (a DSN, a plain-text failure notice, a provider's webhook) reads
its status code and the receiving server's own words here, through the same table the send
uses for live SMTP answers, so one answer means one thing whether it came at once or later.
"""

from __future__ import annotations

import re

from newsletter.mail.classify import (
    REPORT,
    Outcome,
    Reading,
    enhanced_in,
    read_answer,
    reply_code_in,
)
from newsletter.models import BounceKind

# Our copies' Message-ID, as delivery/message.py makes it; match.py checks the MAC.
OUR_MESSAGE_ID = re.compile(rb"<issue-[0-9]{1,12}\.sub-[0-9]{1,12}\.[0-9a-f]{8}@[^>\s]{1,253}>")

KINDS: dict[Outcome, BounceKind | None] = {
    Outcome.HARD: BounceKind.HARD,
    Outcome.SOFT: BounceKind.SOFT,
    Outcome.ABOUT_US: BounceKind.BLOCKED,  # recorded for the editor; the reader is left alone
    Outcome.COMPLAINT: BounceKind.COMPLAINT,
    Outcome.NOTHING: None,
}


def read_failure(status: str, diagnostic: str) -> Reading:
    """Read a failed delivery from its relay's ``status`` and the receiving server's words.

    The receiving server's own answer in ``diagnostic`` ("550 5.7.1 IP address blacklisted")
    outranks the relay's summary in ``status`` (5.1.1) when they disagree; the status is
    read only when the diagnostic has no code of its own. A failure that stays temporary
    (4.x.x) ran out of retries: never hard.
    """
    code = reply_code_in(diagnostic)
    enhanced = enhanced_in(diagnostic)
    if enhanced and code and str(code)[0] != enhanced[0]:
        enhanced = ""  # "550 4.2.2": the two disagree; trust the reply code
    if not enhanced and not status.endswith(".0.0"):
        enhanced = status
    if not code and enhanced:
        code = int(enhanced[0]) * 100 + 50
    elif not code and status:
        code = int(status[0]) * 100 + 50
    reading = read_answer(code, enhanced, REPORT, diagnostic)
    if reading.outcome is Outcome.NOTHING and str(code).startswith("4"):
        return Reading(Outcome.SOFT, "still failing when the retries ran out", enhanced)
    return reading


def kind_for(status: str, diagnostic: str = "") -> BounceKind | None:
    """Return the bounce a permanent failure makes, or None when it says nothing usable."""
    return KINDS[read_failure(status, diagnostic).outcome]
