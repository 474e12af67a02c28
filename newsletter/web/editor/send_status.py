"""What the issue page says about a send, in the editor's words: a status label, the live
counts with a rate over a stated window, and the summary once every copy is accounted for."""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

from newsletter.bounces.listing import issue_counts
from newsletter.config import WeeklySlot
from newsletter.issues.schedule import next_slot
from newsletter.models import Delivery, Issue, IssueStatus, Subscriber, utcnow
from newsletter.subscribers.stats import left_since_issue

LABELS = {
    IssueStatus.DRAFT: "Draft",
    IssueStatus.READY: "Ready for the weekly slot",
    IssueStatus.SCHEDULED: "Scheduled",
    IssueStatus.SENDING: "Sending",
    IssueStatus.PAUSED: "Paused",
    IssueStatus.SENT: "Sent",
    IssueStatus.CANCELLED: "Cancelled",
    IssueStatus.ARCHIVED: "Back catalogue",
}
RATE_WINDOW = "in the last minute"  # delivery.progress counts the last 60 seconds


def label(status: IssueStatus | str) -> str:
    """Return how the page names a state."""
    return LABELS[IssueStatus(status)]


def unsubscribed_since(session: Session, issue: Issue) -> int:
    """Count this issue's readers who have unsubscribed since it started going out."""
    if issue.queued_at is None:
        return 0
    found = session.scalar(
        sa.select(sa.func.count())
        .select_from(Delivery)
        .join(Subscriber, Subscriber.id == Delivery.subscriber_id)
        .where(Delivery.issue_id == issue.id, Subscriber.unsubscribed_at >= issue.queued_at)
    )
    return int(found or 0)


# How the summary names the doors readers leave by (``state.DOORS``).
DOOR_WORDS = {
    "one-click": "by the one-click button",
    "page": "on the unsubscribe page",
    "complaint": "by a complaint",
    "bounce": "by a bounce",
    "editor": "by an editor",
    "import": "by an import",
}


def left_words(left: dict[str, int]) -> str:
    """Say who left since an issue and how, e.g. "Left since: 2 by the one-click button"."""
    said = [f"{n} {DOOR_WORDS[d]}" for d, n in left.items() if n]
    return "Left since: " + (", ".join(said) if said else "nobody") + "."


def summary(session: Session, issue: Issue, counts: dict[str, Any]) -> dict[str, Any]:
    """Return the figures of a finished send: what went out, what came back, how fast."""
    bounces = issue_counts(session, issue.id)
    seconds = None
    if issue.queued_at and issue.sent_at:
        seconds = max((issue.sent_at - issue.queued_at).total_seconds(), 1.0)
    sent = int(counts.get("sent") or 0)
    return {
        "sent": sent,
        "failed": int(counts.get("failed") or 0),
        "skipped": int(counts.get("skipped") or 0),
        "bounced": bounces.hard + bounces.soft,
        "complaints": bounces.complaints,
        "unsubscribed": unsubscribed_since(session, issue),
        "left": left_words(left_since_issue(session, issue)),
        "duration_seconds": None if seconds is None else round(seconds),
        "average_per_s": None if seconds is None else round(sent / seconds, 2),
        "finished_at": issue.sent_at.isoformat() if issue.sent_at else None,
    }


def send_view(session: Session, issue: Issue, counts: dict[str, Any]) -> dict[str, Any]:
    """Return the progress as the page shows it: the label, whether it ended, and a summary."""
    status = IssueStatus(counts["status"])
    finished = status in (IssueStatus.SENT, IssueStatus.CANCELLED)
    view: dict[str, Any] = {
        "label": label(status),
        "finished": finished,
        "rate_window": RATE_WINDOW,
        "summary": summary(session, issue, counts) if finished else None,
    }
    if status is IssueStatus.SENDING or status is IssueStatus.PAUSED:
        bounces = issue_counts(session, issue.id)
        view["bounced"] = bounces.hard + bounces.soft
        view["complaints"] = bounces.complaints
        view["delivered"] = bounces.delivered
    return view


def next_slot_at(slot: WeeklySlot | None, now: datetime | None = None) -> datetime | None:
    """Return when the weekly slot next comes (UTC), or None when no WEEKLY_SLOT is set."""
    return next_slot(now or utcnow(), slot) if slot else None


_QUEUED = re.compile(r"^Issue \d+ is queued for (\d+) subscribers? in \d+ batch(?:es)?\.")


def editor_words(message: str) -> str:
    """Say an action's outcome without the engine's words (batches) on the editor's page."""
    found = _QUEUED.match(message)
    if found is None:
        return message
    n = int(found.group(1))
    said = f"Sending to {n} subscriber{'' if n == 1 else 's'} now; this page follows it."
    return said + message[found.end() :]
