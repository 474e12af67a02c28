"""Figures for the stats page, from aggregates only: DailyStat rows and indexed Delivery counts.

Nothing here scans the subscriber list; the counts per status are ``search.status_counts``
(the trigger-kept ``subscriber_count`` table).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime, timedelta

import sqlalchemy as sa
from sqlalchemy.orm import Session

from newsletter.models import ISSUE_PUBLIC, DailyStat, Delivery, DeliveryStatus, Issue
from newsletter.subscribers.manage import REASON_STAT, Reason

WEEK_KINDS = ("subscribed", "confirmed", "unsubscribed", "bounced")


@dataclass
class Week:
    start: date
    counts: dict[str, int] = field(default_factory=dict)

    @property
    def confirmation_rate(self) -> float | None:
        new = self.counts.get("subscribed", 0)
        return None if new == 0 else min(1.0, self.counts.get("confirmed", 0) / new)


@dataclass
class IssueFigures:
    id: int
    subject: str
    status: str
    sent_at: datetime | None
    sent: int = 0
    failed: int = 0
    queued: int = 0
    skipped: int = 0
    bounced: int = 0
    unsubscribed: int = 0


def week_start(day: date) -> date:
    """Return the Monday of the ISO week that holds ``day``."""
    return day - timedelta(days=day.weekday())


def weekly(session: Session, today: date, weeks: int = 26) -> list[Week]:
    """Return new, confirmed, unsubscribed and bounced counts per week, oldest week first."""
    first = week_start(today) - timedelta(weeks=weeks - 1)
    result = [Week(first + timedelta(weeks=i), dict.fromkeys(WEEK_KINDS, 0)) for i in range(weeks)]
    rows = session.execute(
        sa.select(DailyStat.day, DailyStat.kind, DailyStat.count).where(
            DailyStat.day >= first, DailyStat.kind.in_(WEEK_KINDS)
        )
    )
    for day, kind, count in rows:
        index = (week_start(day) - first).days // 7
        if 0 <= index < weeks:
            result[index].counts[kind] += count
    return result


def kind_totals(session: Session, since: date | None = None) -> dict[str, int]:
    """Return all-time (or since a day) sums of each DailyStat kind."""
    query = sa.select(DailyStat.kind, sa.func.sum(DailyStat.count)).group_by(DailyStat.kind)
    if since is not None:
        query = query.where(DailyStat.day >= since)
    return {kind: int(n or 0) for kind, n in session.execute(query)}


def leaving_reasons(session: Session, since: date | None = None) -> dict[Reason, int]:
    """Return how often readers gave each unsubscribe reason, all time or since a day."""
    query = (
        sa.select(DailyStat.kind, sa.func.sum(DailyStat.count))
        .where(DailyStat.kind.in_([REASON_STAT + r.value for r in Reason]))
        .group_by(DailyStat.kind)
    )
    if since is not None:
        query = query.where(DailyStat.day >= since)
    found = {kind.removeprefix(REASON_STAT): int(n or 0) for kind, n in session.execute(query)}
    return {reason: found.get(reason.value, 0) for reason in Reason}


# A skipped copy's last_error says why; a pause names its day, counted here as one reason.
PAUSED_NOTE = "paused until "


def skip_reasons(session: Session, issue_ids: list[int]) -> dict[int, dict[str, int]]:
    """Return, per issue, its skipped copies counted by reason ("paused" for every pause)."""
    if not issue_ids:
        return {}
    # Grouped by the label of a subquery: PostgreSQL would not see two spellings of the CASE
    # (each with its own parameters) as the same expression.
    skipped = (
        sa.select(
            Delivery.issue_id,
            sa.case(
                (Delivery.last_error.startswith(PAUSED_NOTE, autoescape=True), "paused"),
                else_=Delivery.last_error,
            ).label("why"),
        )
        .where(Delivery.issue_id.in_(issue_ids), Delivery.status == DeliveryStatus.SKIPPED)
        .subquery()
    )
    rows = session.execute(
        sa.select(skipped.c.issue_id, skipped.c.why, sa.func.count()).group_by(
            skipped.c.issue_id, skipped.c.why
        )
    )
    found: dict[int, dict[str, int]] = {i: {} for i in issue_ids}
    for issue_id, reason, n in rows:
        found[issue_id][reason or "unknown"] = int(n)
    return found


def recent_issues(session: Session, limit: int = 12) -> list[Issue]:
    """Return the latest issues that went out or are going out, oldest first."""
    rows = session.scalars(
        sa.select(Issue)
        .where(Issue.status.in_(ISSUE_PUBLIC))
        .order_by(sa.func.coalesce(Issue.queued_at, Issue.created_at).desc(), Issue.id.desc())
        .limit(limit)
    ).all()
    return list(reversed(rows))


def delivery_counts(session: Session, issue_id: int) -> dict[str, int]:
    """Return the deliveries of one issue per status (served by the (issue_id, status) index)."""
    return {
        status.value: n
        for status, n in session.execute(
            sa.select(Delivery.status, sa.func.count())
            .where(Delivery.issue_id == issue_id)
            .group_by(Delivery.status)
        )
    }


def issue_figures(
    session: Session, issues: list[Issue], counts_for: object = None
) -> list[IssueFigures]:
    """Return per-issue figures; bounces and unsubscribes are those in the days after it went out.

    ``counts_for(issue)`` may supply cached delivery counts; by default they are queried.
    """
    getter = counts_for if callable(counts_for) else (lambda i: delivery_counts(session, i.id))
    figures = []
    starts = [(i.queued_at or i.sent_at or i.created_at).date() for i in issues]
    for n, issue in enumerate(issues):
        counts = getter(issue)
        start = starts[n]
        end = starts[n + 1] if n + 1 < len(issues) else None
        window = sa.select(DailyStat.kind, sa.func.sum(DailyStat.count)).where(
            DailyStat.day >= start, DailyStat.kind.in_(("unsubscribed", "bounced"))
        )
        if end is not None:
            window = window.where(DailyStat.day < max(end, start + timedelta(days=1)))
        after = {k: int(v or 0) for k, v in session.execute(window.group_by(DailyStat.kind))}
        figures.append(
            IssueFigures(
                id=issue.id,
                subject=issue.subject,
                status=issue.status.value,
                sent_at=issue.sent_at or issue.queued_at,
                sent=counts.get("sent", 0),
                failed=counts.get("failed", 0),
                queued=counts.get("queued", 0) + counts.get("sending", 0),
                skipped=counts.get("skipped", 0),
                bounced=after.get("bounced", 0),
                unsubscribed=after.get("unsubscribed", 0),
            )
        )
    return figures
