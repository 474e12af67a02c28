"""Which copy a bounce is about: its VERP tag, or the Message-ID it quotes, both signed.

Nothing else is trusted: a notification naming only an address could be forged by anyone
who knows it, and must not unsubscribe or bounce a reader.
"""

from __future__ import annotations

import hmac
import re
from collections.abc import Sequence
from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy.orm import Session

from newsletter.delivery.message import MessageIds
from newsletter.mail.verp import read_tag
from newsletter.models import Delivery

_OUR_ID = re.compile(r"<?issue-([0-9]{1,12})\.sub-([0-9]{1,12})\.([0-9a-f]{8})@([^>\s]+)>?")


@dataclass(frozen=True)
class Copy:
    """The copy a bounce is about."""

    delivery_id: int
    issue_id: int
    subscriber_id: int | None  # None: the reader was erased since


def by_verp(
    session: Session, address: str, bounce_address: str | None, secrets: Sequence[bytes]
) -> Copy | None:
    """Return the copy a VERP envelope recipient names, if its tag is ours and genuine."""
    if not bounce_address:
        return None
    delivery_id = read_tag(address, bounce_address, list(secrets))
    return None if delivery_id is None else _copy(session, Delivery.id == delivery_id)


def by_message_id(session: Session, message_id: str, secrets: Sequence[bytes]) -> Copy | None:
    """Return the copy whose Message-ID this is, if the id's MAC is genuine."""
    found = _OUR_ID.fullmatch(message_id.strip())
    if found is None:
        return None
    issue_id, subscriber_id = int(found.group(1)), int(found.group(2))
    for secret in secrets:
        expected = MessageIds(issue_id, secret, found.group(4))(subscriber_id)
        if hmac.compare_digest(expected, f"<{found.group(0).strip('<>')}>"):
            return _copy(
                session, Delivery.issue_id == issue_id, Delivery.subscriber_id == subscriber_id
            )
    return None


def _copy(session: Session, *where: sa.ColumnElement[bool]) -> Copy | None:
    row = session.execute(
        sa.select(Delivery.id, Delivery.issue_id, Delivery.subscriber_id).where(*where)
    ).first()
    return None if row is None else Copy(row[0], row[1], row[2])
