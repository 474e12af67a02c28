"""Who receives an issue: the one definition the plan, the claims, the editor and the API share.

An issue's audience is every confirmed subscriber, or, for an issue sent to a segment, the
confirmed subscribers who carry any of its tags (``in_segment``, one more clause). A reader
who paused is still in it: the snapshot keeps them as a skipped copy with the reason, and
nobody claims it. Everything that asks "who gets it" asks here.

The segment decides the snapshot; after it, as for a whole send, only leaving the list
(or pausing) takes a reader out: a tag taken off meanwhile takes nobody's copy away.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

from newsletter.models import Delivery, Subscriber, SubscriberStatus, SubscriberTag

# A moment as a value, or as a parameter of a statement built once and run many times.
Moment = datetime | sa.BindParameter[datetime]


def in_audience() -> sa.ColumnElement[bool]:
    """SQL saying that a subscriber row is in an issue's audience (paused or not)."""
    return Subscriber.status == SubscriberStatus.CONFIRMED


def paused(now: Moment) -> sa.ColumnElement[bool]:
    """SQL saying that a subscriber row is paused at ``now``: in the snapshot, but skipped."""
    return Subscriber.paused_until > now


def not_paused(now: Moment) -> sa.ColumnElement[bool]:
    """SQL saying that a subscriber row is not paused at ``now`` (a NULL pause is none)."""
    return sa.or_(Subscriber.paused_until.is_(None), Subscriber.paused_until <= now)


def paused_note(dialect: str) -> sa.ColumnElement[str]:
    """SQL spelling a paused reader's skip reason, "paused until 2026-12-29" (the UTC day)."""
    until = Subscriber.paused_until
    if dialect == "postgresql":
        day = sa.func.to_char(sa.func.timezone("UTC", until), "YYYY-MM-DD", type_=sa.String())
    else:
        # SQLite keeps the UTC time as text, "2026-12-29 10:00:00.000000".
        day = sa.func.substr(until, 1, 10, type_=sa.String())
    return sa.literal("paused until ", type_=sa.String()) + day


def in_segment(tag_ids: Sequence[int]) -> sa.Exists:
    """SQL saying that a subscriber row carries any of the tags ``tag_ids`` (a segment)."""
    return sa.exists().where(
        SubscriberTag.subscriber_id == Subscriber.id, SubscriberTag.tag_id.in_(list(tag_ids))
    )


def audience(*columns: Any, tags: Sequence[int] = ()) -> sa.Select[Any]:
    """Return the SELECT of ``columns`` (default: the id) over the readers who receive an issue.

    ``tags``: the ids of the segment's tags; none means every confirmed reader.
    """
    query = sa.select(*(columns or (Subscriber.id,))).where(in_audience())
    return query.where(in_segment(tags)) if tags else query


def count_audience(session: Session, tags: Sequence[int] = ()) -> int:
    """Return how many readers an issue sent now would be snapshotted for (paused ones too)."""
    query = sa.select(sa.func.count()).select_from(Subscriber).where(in_audience())
    if tags:
        # Start from the segment's links, not from every reader: a small group of a large
        # list is counted by reading the group.
        tagged = sa.select(SubscriberTag.subscriber_id).where(SubscriberTag.tag_id.in_(list(tags)))
        query = query.where(Subscriber.id.in_(tagged))
    return session.scalar(query) or 0


def this_reader(expr: Any) -> sa.ScalarSelect[Any]:
    """SQL reading ``expr`` off a delivery's own subscriber row, found by its primary key.

    A scalar subquery rather than EXISTS, with the reader's conditions in what it reads and
    only the key in its WHERE: PostgreSQL plans an EXISTS as a join whose shape follows its
    estimates, and on a table filled a moment ago (no statistics yet) it chose to rescan every
    confirmed reader for each delivery row. This stays one primary-key lookup per row.
    """
    return sa.select(expr).where(Subscriber.id == Delivery.subscriber_id).scalar_subquery()


def still_in_audience() -> sa.ColumnElement[bool]:
    """SQL saying that a delivery's subscriber is still in the audience (paused or not)."""
    return this_reader(in_audience()).is_(True)


def receiving(now: Moment) -> sa.ColumnElement[bool]:
    """SQL saying that a delivery's subscriber is in the audience and not paused at ``now``."""
    return this_reader(sa.and_(in_audience(), not_paused(now))).is_(True)
