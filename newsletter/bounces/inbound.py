"""One raw notification in, one line per notice out: what every mail-borne path calls.

`bounces receive`, `bounces serve` and the polled mailbox each hand the mail here; it is
parsed, each notice goes through ``intake.apply_notice``, and the whole is committed at once, so a
caller may drop or delete the mail as soon as this returns. A database error propagates
after a rollback: nothing was recorded and the mail should be tried again.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import replace

from sqlalchemy.orm import Session

from newsletter.bounces.intake import apply_notice
from newsletter.bounces.parse import MAX_INPUT, parse
from newsletter.config import Settings

log = logging.getLogger(__name__)

MAX_SIZE = MAX_INPUT


def apply_mail(
    session: Session, raw: bytes, envelope_to: str | Sequence[str], settings: Settings
) -> list[str]:
    """Parse one mail, apply each notice it holds and commit; return one line per notice.

    ``envelope_to`` may list several envelope recipients (an SMTP transaction with several
    RCPTs): the mail is parsed once and each notice applied for each recipient's address.
    """
    recipients = [envelope_to] if isinstance(envelope_to, str) else list(envelope_to)
    if len(raw) > MAX_SIZE:
        log.warning("notification of %d bytes refused (over %d)", len(raw), MAX_SIZE)
        return [f"refused: the message is over {MAX_SIZE} bytes; nothing recorded"]
    notices = parse(raw, recipients[0] if recipients else "")
    if not notices:
        log.info("mail of %d bytes is no bounce or complaint we can read; dropped", len(raw))
        return ["ignored: not a bounce or complaint that can be read"]
    lines = []
    try:
        for rcpt in recipients or [""]:
            for parsed in notices:
                notice = replace(parsed, envelope_to=rcpt.strip() or parsed.envelope_to)
                line = apply_notice(session, notice, settings)
                log.info("%s notification: %s", notice.source, line)
                lines.append(line)
        session.commit()
    except BaseException:
        session.rollback()
        raise
    return lines
