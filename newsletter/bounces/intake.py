"""Take in one notification about one copy: match it, record it once, apply it.

Every way a bounce or complaint arrives (an MTA pipe, the SMTP listener, the polled mailbox,
a provider's webhook) parses into ``Notice`` objects and ends in ``apply_notice``. A notice that
matches no copy of ours, names a reader since erased, says only "delayed", or repeats one
already taken in is logged and changes nothing.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy.orm import Session

from newsletter.bounces import match
from newsletter.bounces.record import BounceReport, record_bounce
from newsletter.config import Settings
from newsletter.models import Bounce, BounceKind, Subscriber
from newsletter.signing import signing_keys
from newsletter.subscribers.state import unsubscribe

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Notice:
    """What one notification says about one recipient."""

    kind: BounceKind | None  # None: nothing to act on (a delay, a success report)
    source: str  # dsn, arf, or a parser's or provider's name
    diagnostic: str = ""
    status_code: str = ""  # RFC 3463, e.g. "5.1.1"
    recipient: str = ""  # the address the notification names (informational)
    message_id: str = ""  # the Message-ID of our copy that it quotes
    envelope_to: str = ""  # where the notification was sent: our VERP address
    original_mail_from: str = ""  # the envelope sender a complaint says our copy had
    raw: str = ""


def secrets_of(settings: Settings) -> list[bytes]:
    """Return the keys that may have signed a tag or Message-ID (current first)."""
    return [k.encode() for k in signing_keys(settings.secret_key, settings.secret_key_fallbacks)]


def find_copy(session: Session, notice: Notice, settings: Settings) -> match.Copy | None:
    """Return the copy a notice is about, by VERP tag first, then by quoted Message-ID."""
    secrets: Sequence[bytes] = secrets_of(settings)
    copy = None
    for address in (notice.envelope_to, notice.original_mail_from):
        if copy is None and address:
            copy = match.by_verp(session, address, settings.bounce_address, secrets)
    if copy is None and notice.message_id:
        copy = match.by_message_id(session, notice.message_id, secrets)
    return copy


def apply_notice(session: Session, notice: Notice, settings: Settings) -> str:
    """Match, record and apply one notice; return a line saying what happened."""
    if notice.kind is None:
        return f"ignored: {notice.source} says nothing to act on ({notice.status_code or '-'})"
    copy = find_copy(session, notice, settings)
    if copy is None:
        log.info("bounce matched no copy of ours: %s %s", notice.source, notice.status_code)
        return "unmatched: no copy of ours is named by a valid tag or Message-ID"
    # The reader's row is locked first: two copies of one bounce arriving at once (the pipe
    # and the mailbox, an MTA retrying) then see each other, and only one is recorded.
    if copy.subscriber_id is None or (
        session.get(Subscriber, copy.subscriber_id, with_for_update=True) is None
    ):
        return "ignored: that reader has been erased"
    # An undone bounce still counts as seen: a replay after "reactivate" must not undo it.
    seen = session.scalar(
        sa.select(Bounce.id).where(
            Bounce.delivery_id == copy.delivery_id, Bounce.kind == notice.kind
        )
    )
    if seen is not None:
        return f"duplicate: bounce {seen} already records this"
    report = BounceReport(
        subscriber_id=copy.subscriber_id,
        kind=notice.kind,
        diagnostic=notice.diagnostic,
        issue_id=copy.issue_id,
        delivery_id=copy.delivery_id,
        source=notice.source,
        status_code=notice.status_code,
        raw=notice.raw,
    )
    changed = record_bounce(session, report, settings.bounce_soft_limit)
    if notice.kind is BounceKind.COMPLAINT:
        unsubscribe(session, copy.subscriber_id, detail="complaint")
        changed = True
    verb = "and applied" if changed else "(no change to the reader)"
    return f"recorded {notice.kind.value} for subscriber {copy.subscriber_id} {verb}"
