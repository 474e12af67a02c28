"""A reader's place in the evergreen sequence: join, leave, pace (delivery/evergreen.py sends).

The state lives on the reader's row: ``evergreen`` (in the sequence or not), their pace in
seconds (None: EVERGREEN_INTERVAL), their position (the last tip handed out) and when the
next tip is due. Only a confirmed reader has a due time; confirming (again) sets it to now.
"""

from __future__ import annotations

from datetime import datetime, timedelta

import sqlalchemy as sa
from sqlalchemy.orm import Session

from newsletter.errors import Invalid
from newsletter.i18n import N_
from newsletter.models import Subscriber, SubscriberStatus, utcnow

# The form's value for "start from the first tip".
START_FIRST = "first"
# The paces a reader may choose, in seconds; "default" is the newsletter's EVERGREEN_INTERVAL.
PACES = {"daily": 86400, "twice-weekly": 302400, "weekly": 604800}
DEFAULT_PACE = "default"


def start_from_first(session: Session, subscriber_id: int) -> None:
    """Put a reader who has not confirmed yet in the sequence: it starts once they confirm.

    A confirmed reader's row is not touched (a sign-up form changes nothing about a
    confirmed person; they join on their own page).
    """
    session.execute(
        sa.update(Subscriber)
        .where(Subscriber.id == subscriber_id, Subscriber.status != SubscriberStatus.CONFIRMED)
        .values(evergreen=True)
        .execution_options(synchronize_session=False)
    )


def join(reader: Subscriber, now: datetime | None = None) -> None:
    """Put a reader in the sequence (again): a confirmed one's next tip is due now."""
    reader.evergreen = True
    confirmed = reader.status is SubscriberStatus.CONFIRMED
    reader.evergreen_due_at = (now or utcnow()) if confirmed else None


def leave(reader: Subscriber) -> None:
    """Take a reader out of the sequence; their position stays for a later rejoin."""
    reader.evergreen = False
    reader.evergreen_due_at = None


def pace_name(reader: Subscriber) -> str:
    """Return the name of the reader's pace ("default" for EVERGREEN_INTERVAL)."""
    for name, seconds in PACES.items():
        if reader.evergreen_pace == seconds:
            return name
    return DEFAULT_PACE


def set_pace(reader: Subscriber, name: str, default: int, now: datetime | None = None) -> None:
    """Set the reader's pace by name; an unknown name is refused and changes nothing.

    ``default``: EVERGREEN_INTERVAL, the pace named "default".
    """
    if name == DEFAULT_PACE:
        seconds = None
    elif name in PACES:
        seconds = PACES[name]
    else:
        raise Invalid("pace", N_("Choose daily, twice a week or weekly."))
    reader.evergreen_pace = seconds
    due = reader.evergreen_due_at
    if reader.evergreen and due is not None:
        # A faster pace takes effect from the next tip, not after the old, longer wait.
        every = timedelta(seconds=seconds or default)
        reader.evergreen_due_at = min(due, (now or utcnow()) + every)
