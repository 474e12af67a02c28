"""Figures for the stats page, from aggregates only: DailyStat rows and indexed Delivery counts.

Nothing here scans the subscriber list; the counts per status are ``search.status_counts``
(the trigger-kept ``subscriber_count`` table).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from itertools import pairwise

import sqlalchemy as sa
from sqlalchemy.orm import Session

from newsletter.models import (
    ISSUE_PUBLIC,
    DailyStat,
    Delivery,
    DeliveryStatus,
    EventKind,
    Issue,
    Subscriber,
    SubscriberEvent,
    SubscriberStatus,
    SubscriberTag,
    Tag,
)
from newsletter.subscribers.manage import REASON_STAT, Reason
from newsletter.subscribers.state import (
    CONFIRMED_UNASKED_STAT,
    DOORS,
    IMPORTED_STAT,
    LEFT_STAT,
    UNASKED_STAT,
    door,
)

WEEK_KINDS = (
    "subscribed",
    "confirmed",
    "unsubscribed",
    "bounced",
    IMPORTED_STAT,
    UNASKED_STAT,
    CONFIRMED_UNASKED_STAT,
)
LEFT_KINDS = tuple(LEFT_STAT + d for d in DOORS)


@dataclass
class Week:
    start: date
    counts: dict[str, int] = field(default_factory=dict)

    @property
    def signups(self) -> int:
        """Return the new people who came by themselves (or by hand), not by an import."""
        return max(0, self.counts.get("subscribed", 0) - self.counts.get(IMPORTED_STAT, 0))

    @property
    def asked(self) -> int:
        """Return the sign-ups that were asked to confirm (not confirmed by an editor)."""
        return max(0, self.signups - self.counts.get(UNASKED_STAT, 0))

    @property
    def asked_confirmed(self) -> int:
        """Return the confirmations by the readers' own click on a sign-up's link."""
        c = self.counts
        return max(0, c.get("confirmed", 0) - c.get(CONFIRMED_UNASKED_STAT, 0))

    @property
    def confirmation_rate(self) -> float | None:
        return rate(self.asked_confirmed, self.asked)


def rate(confirmed: int, asked: int) -> float | None:
    """Return confirmed ÷ asked (at most 1: a click may come the week after), None for none."""
    return None if asked <= 0 else min(1.0, confirmed / asked)


def overall_rate(totals: dict[str, int]) -> float | None:
    """Return the confirmation rate over all time, from ``kind_totals``."""
    week = Week(date.min, totals)
    return week.confirmation_rate


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
    # Who left in the days after, by door (``state.DOORS``).
    left: dict[str, int] = field(default_factory=dict)


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
    """Return per-issue figures; bounces and unsubscribes are those in the days after it went out
    (up to the next issue), the leavers counted by the door they left by.

    ``counts_for(issue)`` may supply cached delivery counts; by default they are queried.
    """
    getter = counts_for if callable(counts_for) else (lambda i: delivery_counts(session, i.id))
    starts = [(i.queued_at or i.sent_at or i.created_at).date() for i in issues]
    ends = [max(end, start + timedelta(days=1)) for start, end in pairwise(starts)]
    # One read of the daily counts from the first issue on, shared out into the windows.
    per_day: dict[date, dict[str, int]] = {}
    if issues:
        rows = session.execute(
            sa.select(DailyStat.day, DailyStat.kind, DailyStat.count).where(
                DailyStat.day >= min(starts),
                DailyStat.kind.in_(("unsubscribed", "bounced", *LEFT_KINDS)),
            )
        )
        for day, kind, count in rows:
            per_day.setdefault(day, {})[kind] = int(count or 0)
    figures = []
    for n, issue in enumerate(issues):
        counts = getter(issue)
        start, end = starts[n], ends[n] if n < len(ends) else None
        after: dict[str, int] = {}
        for day, kinds in per_day.items():
            if day >= start and (end is None or day < end):
                for kind, count in kinds.items():
                    after[kind] = after.get(kind, 0) + count
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
                left={d: after.get(LEFT_STAT + d, 0) for d in DOORS},
            )
        )
    return figures


@dataclass
class TagGrowth:
    name: str
    readers: int  # confirmed now
    joined: int  # confirmed within the period
    left: int  # unsubscribed or bounced within the period


def tag_growth(session: Session, since: datetime) -> list[TagGrowth]:
    """Return, per tag, its confirmed readers now and those who joined and left since a time.

    One grouped query over the tag links joined to their people (no query per tag).
    """
    S = SubscriberStatus
    yes = sa.func.sum(sa.case((Subscriber.status == S.CONFIRMED, 1), else_=0))
    joined = sa.func.sum(sa.case((Subscriber.confirmed_at >= since, 1), else_=0))
    gone = sa.func.sum(
        sa.case(
            (
                sa.and_(Subscriber.status == S.UNSUBSCRIBED, Subscriber.unsubscribed_at >= since),
                1,
            ),
            (sa.and_(Subscriber.status == S.BOUNCED, Subscriber.bounced_at >= since), 1),
            else_=0,
        )
    )
    query = (
        sa.select(Tag.name, yes, joined, gone)
        .select_from(Tag)
        .outerjoin(SubscriberTag, SubscriberTag.tag_id == Tag.id)
        .outerjoin(Subscriber, Subscriber.id == SubscriberTag.subscriber_id)
        .group_by(Tag.id, Tag.name, Tag.key)
        .order_by(Tag.key)
    )
    return [
        TagGrowth(name, int(y or 0), int(j or 0), int(g or 0))
        for name, y, j, g in session.execute(query)
    ]


def left_since_issue(session: Session, issue: Issue) -> dict[str, int]:
    """Return, by door, this issue's readers who unsubscribed or bounced since it went out.

    One grouped query over the issue's copies joined to their history lines.
    """
    found = dict.fromkeys(DOORS, 0)
    if issue.queued_at is None:
        return found
    rows = session.execute(
        sa.select(
            SubscriberEvent.kind,
            SubscriberEvent.detail,
            sa.func.count(sa.distinct(SubscriberEvent.subscriber_id)),
        )
        .select_from(Delivery)
        .join(SubscriberEvent, SubscriberEvent.subscriber_id == Delivery.subscriber_id)
        .where(
            Delivery.issue_id == issue.id,
            SubscriberEvent.kind.in_([EventKind.UNSUBSCRIBED, EventKind.BOUNCED]),
            SubscriberEvent.at >= issue.queued_at,
        )
        .group_by(SubscriberEvent.kind, SubscriberEvent.detail)
    )
    for kind, detail, n in rows:
        target = (
            SubscriberStatus.BOUNCED if kind is EventKind.BOUNCED else SubscriberStatus.UNSUBSCRIBED
        )
        found[door(target, detail or "")] += int(n)
    return found
