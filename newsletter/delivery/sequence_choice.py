"""The editor's choice of the evergreen sequence: which archived tips are in it, in what order.

Without a choice the sequence is every archived or sent tip, oldest first. The first change
the editor makes writes the whole list as it stands (``sequence_tip``: a position and
whether the tip is in); a tip archived or sent after that has no row and comes after the
chosen ones, by its date, so the sequence still grows with every new tip. The sequence's
readers follow the list at their next tip: each gets the first tip of it they have not had.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, Session, mapped_column

from newsletter.errors import Invalid
from newsletter.models import (
    Delivery,
    DeliveryStatus,
    Issue,
    IssueStatus,
    Model,
    Subscriber,
    SubscriberStatus,
)

D = DeliveryStatus
CANDIDATES = (IssueStatus.ARCHIVED, IssueStatus.SENT)
ACTIONS = ("up", "down", "include", "exclude", "move")
_EVERGREEN_BATCH = -1  # delivery.evergreen.EVERGREEN_BATCH (that module imports this one)


class SequenceTip(Model):
    """A tip's place in the editor's sequence, and whether it is in it at all."""

    __tablename__ = "sequence_tip"

    issue_id: Mapped[int] = mapped_column(
        sa.ForeignKey("issue.id", ondelete="CASCADE"), primary_key=True
    )
    position: Mapped[int] = mapped_column()
    included: Mapped[bool] = mapped_column()


# The back catalogue's own table (archive/tables.py), named here without importing the layer
# above: only its original date is read.
_SOURCE = sa.table("issue_source", sa.column("issue_id"), sa.column("published_at"))


def tip_date() -> sa.ColumnElement[datetime]:
    """A tip's date: its original one for an imported tip, else when it was sent or written."""
    published = (
        sa.select(_SOURCE.c.published_at)
        .where(_SOURCE.c.issue_id == Issue.id)
        .limit(1)
        .scalar_subquery()
    )
    return sa.func.coalesce(published, Issue.sent_at, Issue.created_at)


def _ordered(*columns: Any) -> sa.Select[Any]:
    unchosen = sa.case((SequenceTip.position.is_(None), 1), else_=0)
    return (
        sa.select(*columns)
        .outerjoin(SequenceTip, SequenceTip.issue_id == Issue.id)
        .where(Issue.status.in_(CANDIDATES))
        .order_by(unchosen, SequenceTip.position, tip_date(), Issue.id)
    )


def sequence(session: Session) -> list[int]:
    """Return the ids of the sequence's tips in order (the catalogue, never the list)."""
    chosen = sa.func.coalesce(SequenceTip.included, sa.true())
    return [i for (i,) in session.execute(_ordered(Issue.id).where(chosen)).all()]


@dataclass(frozen=True)
class Choice:
    place: int  # its place in the list, from 1 (tips left out have one too)
    issue_id: int
    subject: str
    date: datetime
    number: int | None  # its number in the sequence; None: left out
    sent: int = 0  # copies the sequence sent
    waiting: int = 0  # copies the sequence has queued or in flight
    readers: int = 0  # readers whose last tip from the sequence is this one


def choices(session: Session) -> list[Choice]:
    """Return every archived or sent tip in the sequence's order, with its counts."""
    counts: dict[tuple[int, bool], int] = {}
    for issue_id, status, n in session.execute(
        sa.select(Delivery.issue_id, Delivery.status, sa.func.count())
        .where(
            Delivery.batch == _EVERGREEN_BATCH, Delivery.status.in_((D.SENT, D.QUEUED, D.SENDING))
        )
        .group_by(Delivery.issue_id, Delivery.status)
    ).all():
        key = (issue_id, status is D.SENT)
        counts[key] = counts.get(key, 0) + n
    at = dict(readers_at(session))
    rows = session.execute(
        _ordered(Issue.id, Issue.subject, tip_date(), sa.func.coalesce(SequenceTip.included, True))
    ).all()
    out: list[Choice] = []
    number = 0
    for place, (issue_id, subject, date, included) in enumerate(rows, 1):
        if included:
            number += 1
        out.append(
            Choice(
                place,
                issue_id,
                subject,
                date,
                number if included else None,
                counts.get((issue_id, True), 0),
                counts.get((issue_id, False), 0),
                at.get(number, 0) if included else 0,
            )
        )
    return out


def readers_at(session: Session) -> list[tuple[int, int]]:
    """Return (position, readers) for the readers in the sequence: 0 is before the first tip."""
    rows = session.execute(
        sa.select(Subscriber.evergreen_position, sa.func.count())
        .where(Subscriber.evergreen, Subscriber.status == SubscriberStatus.CONFIRMED)
        .group_by(Subscriber.evergreen_position)
        .order_by(Subscriber.evergreen_position)
    ).all()
    return [(int(p), int(n)) for p, n in rows]


def change(session: Session, issue_id: int, action: str, to: str = "") -> str:
    """Move a tip, or take it out of or put it back in the sequence; say what was done.

    Bad input (an unknown tip or action, a place that is not a number in the list) raises
    ``Invalid`` and changes nothing. The caller commits.
    """
    if action not in ACTIONS:
        raise Invalid("action", "Choose up, down, leave out, put back or move.")
    rows = session.execute(
        _ordered(Issue.id, Issue.subject, sa.func.coalesce(SequenceTip.included, True))
    ).all()
    order = [r[0] for r in rows]
    included = {r[0]: bool(r[2]) for r in rows}
    subjects = {r[0]: r[1] for r in rows}
    if issue_id not in included:
        raise Invalid("issue_id", "That tip is not archived or sent: it cannot be in the sequence.")
    here = order.index(issue_id)
    if action == "move":
        to = to.strip()
        if not (to.isascii() and to.isdigit()) or not 1 <= int(to) <= len(order):
            raise Invalid("to", f"Enter a place from 1 to {len(order)}.")
        there = int(to) - 1
    else:
        there = {"up": max(here - 1, 0), "down": min(here + 1, len(order) - 1)}.get(action, here)
    order.insert(there, order.pop(here))
    if action in ("include", "exclude"):
        included[issue_id] = action == "include"
    session.execute(sa.delete(SequenceTip))
    session.execute(
        sa.insert(SequenceTip),
        [{"issue_id": i, "position": n, "included": included[i]} for n, i in enumerate(order)],
    )
    name = subjects[issue_id]
    if action == "exclude":
        return f"“{name}” is left out of the sequence."
    if action == "include":
        return f"“{name}” is in the sequence again."
    return f"“{name}” is now at place {there + 1}."


def reset(session: Session) -> None:
    """Forget the editor's choice: every archived or sent tip, oldest first. Caller commits."""
    session.execute(sa.delete(SequenceTip))


def tips_in_sequence(session: Session) -> int:
    """Return how many tips the sequence has."""
    return len(sequence(session))
