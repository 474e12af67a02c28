"""Bounces as editors read them: newest first in pages, one with its raw notification, and
exact per-issue counts (from the rows, not the daily approximation)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.orm import Session

from newsletter.models import Bounce, BounceKind, Delivery, DeliveryStatus, Issue, Subscriber

# Gmail's and Yahoo's bulk-sender rules: keep spam complaints under 0.3% of what was delivered.
COMPLAINT_CEILING = 0.003


@dataclass(frozen=True)
class BounceRow:
    """One line of the bounces list."""

    id: int
    at: datetime
    kind: BounceKind
    source: str
    status_code: str
    diagnostic: str
    subscriber_id: int | None
    email: str
    issue_id: int | None
    subject: str
    undone: bool


def recent(
    session: Session,
    *,
    kind: BounceKind | None = None,
    subscriber_id: int | None = None,
    before: int | None = None,
    limit: int = 50,
) -> list[BounceRow]:
    """Return up to ``limit`` bounces, newest first, older than the id ``before``."""
    query = (
        sa.select(Bounce, Subscriber.email, Issue.subject)
        .outerjoin(Subscriber, Subscriber.id == Bounce.subscriber_id)
        .outerjoin(Issue, Issue.id == Bounce.issue_id)
        .order_by(Bounce.id.desc())
        .limit(limit)
    )
    if kind is not None:
        query = query.where(Bounce.kind == kind)
    if subscriber_id is not None:
        query = query.where(Bounce.subscriber_id == subscriber_id)
    if before is not None:
        query = query.where(Bounce.id < before)
    return [
        BounceRow(
            id=b.id,
            at=b.at,
            kind=b.kind,
            source=b.source,
            status_code=b.status_code,
            diagnostic=b.diagnostic,
            subscriber_id=b.subscriber_id,
            email=email or "",
            issue_id=b.issue_id,
            subject=subject or "",
            undone=b.undone_at is not None,
        )
        for b, email, subject in session.execute(query).all()
    ]


@dataclass(frozen=True)
class IssueBounces:
    """What came back about one issue's copies."""

    delivered: int
    hard: int
    soft: int
    blocked: int
    complaints: int

    @property
    def complaint_rate(self) -> float:
        """Complaints per delivered copy (0 before anything was delivered)."""
        return self.complaints / self.delivered if self.delivered else 0.0

    @property
    def over_ceiling(self) -> bool:
        """Whether complaints passed the 0.3% that Gmail and Yahoo enforce."""
        return self.complaint_rate > COMPLAINT_CEILING


def issue_counts(session: Session, issue_id: int) -> IssueBounces:
    """Return exact counts of the issue's bounces and complaints (undone ones left out)."""
    counts = dict(
        session.execute(
            sa.select(Bounce.kind, sa.func.count(sa.distinct(Bounce.delivery_id)))
            .where(Bounce.issue_id == issue_id, Bounce.undone_at.is_(None))
            .group_by(Bounce.kind)
        ).all()
    )
    delivered = session.scalar(
        sa.select(sa.func.count())
        .select_from(Delivery)
        .where(Delivery.issue_id == issue_id, Delivery.status == DeliveryStatus.SENT)
    )
    return IssueBounces(
        delivered=int(delivered or 0),
        hard=int(counts.get(BounceKind.HARD, 0)),
        soft=int(counts.get(BounceKind.SOFT, 0)),
        blocked=int(counts.get(BounceKind.BLOCKED, 0)),
        complaints=int(counts.get(BounceKind.COMPLAINT, 0)),
    )
