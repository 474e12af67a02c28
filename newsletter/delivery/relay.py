"""A send waiting for its mail relay: since when it cannot be reached, why, when to try again.

When the relay cannot take mail (no connection, a timeout, a dropped line, a "not now" before
any reader is named), no reader is at fault: the copies stay queued untouched and the whole
send waits, longer each time (the time waited so far, between SEND_RELAY_WAIT and
SEND_RELAY_WAIT_MAX), then goes on by itself. The issue row says so for the editor's page,
``issues status`` and the reconciler, which hands the send's batches out again once the
next try is due. The first copy the relay takes again clears it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

import sqlalchemy as sa
from sqlalchemy.orm import Session

from newsletter.models import Issue, IssueStatus


@dataclass(frozen=True)
class RelayState:
    down_since: datetime | None
    retry_at: datetime | None
    error: str

    def wait(self, now: datetime) -> float:
        """Seconds until the next try (0 when it is due, or the relay is not known down)."""
        if self.retry_at is None:
            return 0.0
        return max((self.retry_at - now).total_seconds(), 0.0)


def relay_state(session: Session, issue_id: int) -> RelayState:
    """Read what the issue knows of its relay."""
    row = session.execute(
        sa.select(Issue.relay_down_since, Issue.relay_retry_at, Issue.relay_error).where(
            Issue.id == issue_id
        )
    ).one_or_none()
    if row is None:
        return RelayState(None, None, "")
    return RelayState(row[0], row[1], row[2] or "")


def note_unreachable(
    session: Session, issue_id: int, now: datetime, error: str, first: float, most: float
) -> datetime:
    """Record that the relay cannot be reached; return when the send tries again.

    The wait is the time the relay has been down so far, kept between ``first`` and ``most``:
    it doubles from try to try. A next try another batch already set is kept, so several
    batches failing at once do not push it further. The caller commits.
    """
    state = relay_state(session, issue_id)
    keep: dict[str, object] = {"relay_error": error[:300], "updated_at": Issue.updated_at}
    if state.retry_at is not None and state.retry_at > now:
        retry_at = state.retry_at
        values = keep
    else:
        since = state.down_since or now
        wait = min(max((now - since).total_seconds(), first), most)
        retry_at = now + timedelta(seconds=wait)
        values = {**keep, "relay_down_since": since, "relay_retry_at": retry_at}
    session.execute(
        sa.update(Issue)
        .where(Issue.id == issue_id, Issue.status == IssueStatus.SENDING)
        .values(**values)
        .execution_options(synchronize_session=False)
    )
    return retry_at


def clear_unreachable(session: Session, issue_id: int) -> None:
    """The relay took a copy again: forget the outage. The caller commits."""
    session.execute(
        sa.update(Issue)
        .where(Issue.id == issue_id, Issue.relay_down_since.is_not(None))
        .values(
            relay_down_since=None, relay_retry_at=None, relay_error="", updated_at=Issue.updated_at
        )
        .execution_options(synchronize_session=False)
    )
