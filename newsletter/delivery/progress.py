"""An issue's progress: counts per delivery status, the recent rate and an ETA."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

from newsletter.delivery.lifecycle import MAYBE_SENT
from newsletter.delivery.relay import relay_state
from newsletter.models import Delivery, DeliveryStatus, Issue, IssueStatus

D = DeliveryStatus


@dataclass(frozen=True)
class Progress:
    status: IssueStatus
    audience: int
    counts: dict[str, int]
    rate: float  # messages per second over the last minute
    eta_seconds: float | None
    pause_reason: str
    possible_duplicates: int
    # A sending issue whose relay cannot be reached: its last answer, seconds to the next try.
    relay_error: str = ""
    relay_retry_in: float | None = None

    @property
    def relay_waiting(self) -> bool:
        return self.status is IssueStatus.SENDING and bool(self.relay_error)

    @property
    def done(self) -> int:
        return self.counts["sent"] + self.counts["failed"] + self.counts["skipped"]

    def as_dict(self) -> dict[str, Any]:
        return {
            "status": self.status.value,
            "audience": self.audience,
            **self.counts,
            "done": self.done,
            "rate_per_s": round(self.rate, 2),
            "eta_seconds": None if self.eta_seconds is None else round(self.eta_seconds),
            "pause_reason": self.pause_reason,
            "possible_duplicates": self.possible_duplicates,
            "relay_waiting": self.relay_waiting,
            "relay_error": self.relay_error if self.relay_waiting else "",
            "relay_retry_in": (
                round(self.relay_retry_in)
                if self.relay_waiting and self.relay_retry_in is not None
                else None
            ),
        }


def progress(session: Session, issue_id: int, now: datetime, window: float = 60.0) -> Progress:
    """Count an issue's deliveries per status, with the recent rate and an ETA."""
    issue = session.execute(
        sa.select(Issue.status, Issue.audience, Issue.pause_reason).where(Issue.id == issue_id)
    ).one()
    counts = {s.value: 0 for s in D}
    for status, n in session.execute(
        sa.select(Delivery.status, sa.func.count())
        .where(Delivery.issue_id == issue_id)
        .group_by(Delivery.status)
    ):
        counts[DeliveryStatus(status).value] = n
    since = now - timedelta(seconds=window)
    recent = session.scalar(
        sa.select(sa.func.count()).where(
            Delivery.issue_id == issue_id, Delivery.status == D.SENT, Delivery.sent_at >= since
        )
    )
    first = session.scalar(
        sa.select(sa.func.min(Delivery.sent_at)).where(
            Delivery.issue_id == issue_id, Delivery.sent_at >= since
        )
    )
    span = max((now - first).total_seconds(), 1.0) if first else window
    rate = (recent or 0) / span
    left = counts["queued"] + counts["sending"]
    eta = left / rate if rate > 0 and left else (0.0 if not left else None)
    dupes = session.scalar(
        sa.select(sa.func.count()).where(
            Delivery.issue_id == issue_id,
            Delivery.status == D.SENT,
            Delivery.last_error.in_(MAYBE_SENT),
        )
    )
    relay = relay_state(session, issue_id)
    return Progress(
        IssueStatus(issue.status),
        issue.audience,
        counts,
        rate,
        eta,
        issue.pause_reason,
        dupes or 0,
        relay_error=relay.error if relay.down_since is not None else "",
        relay_retry_in=relay.wait(now) if relay.retry_at is not None else None,
    )
