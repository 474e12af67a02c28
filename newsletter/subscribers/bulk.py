"""Act on everyone a filter of the list matches (search, status, tag), never loading the list.

Tagging and untagging are one statement each. Unsubscribing and erasing are jobs a worker runs
a chunk per transaction (``bulk_jobs``): memory stays flat at any size.
"""

from __future__ import annotations

from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy.orm import Session

from newsletter.models import Subscriber, SubscriberStatus, SubscriberTag
from newsletter.subscribers.search import carries, like_clause
from newsletter.subscribers.tags import MAX_TAGS_PER_PERSON, ensure_tags

S = SubscriberStatus


@dataclass(frozen=True)
class Filter:
    """The list as the editor filtered it: a search term, a status, a tag (by id)."""

    q: str = ""
    status: str = ""
    tag_id: int | None = None

    def where(self) -> list[sa.ColumnElement[bool]]:
        """Return the WHERE clauses of this filter over Subscriber."""
        clauses: list[sa.ColumnElement[bool]] = []
        if self.status:
            clauses.append(Subscriber.status == self.status)
        if self.q:
            clauses.append(like_clause(self.q))
        if self.tag_id is not None:
            clauses.append(carries(self.tag_id))
        return clauses


def count_matching(session: Session, filt: Filter) -> int:
    """Return how many people the filter matches now."""
    query = sa.select(sa.func.count()).select_from(Subscriber).where(*filt.where())
    return session.scalar(query) or 0


def _ids(filt: Filter) -> sa.Select[int]:
    return sa.select(Subscriber.id).where(*filt.where())


def tag_all(session: Session, filt: Filter, name: str) -> int:
    """Give the tag ``name`` (clean) to everyone the filter matches, in one statement.

    People who have it already keep it; people at MAX_TAGS_PER_PERSON tags are left out.
    Return how many got it.
    """
    tag_id = ensure_tags(session, [name])[name.lower()]
    has_room = (
        sa.select(sa.func.count())
        .where(SubscriberTag.subscriber_id == Subscriber.id)
        .scalar_subquery()
        < MAX_TAGS_PER_PERSON
    )
    already = sa.exists().where(
        SubscriberTag.subscriber_id == Subscriber.id, SubscriberTag.tag_id == tag_id
    )
    rows = sa.select(Subscriber.id, sa.literal(tag_id)).where(*filt.where(), ~already, has_room)
    before = _links(session, tag_id)
    session.execute(sa.insert(SubscriberTag).from_select(["subscriber_id", "tag_id"], rows))
    return _links(session, tag_id) - before


def _links(session: Session, tag_id: int) -> int:
    query = sa.select(sa.func.count()).where(SubscriberTag.tag_id == tag_id)
    return session.scalar(query) or 0


def untag_all(session: Session, filt: Filter, tag_id: int) -> int:
    """Take the tag off everyone the filter matches, in one statement; return how many lost it."""
    before = _links(session, tag_id)
    session.execute(
        sa.delete(SubscriberTag)
        .where(SubscriberTag.tag_id == tag_id, SubscriberTag.subscriber_id.in_(_ids(filt)))
        .execution_options(synchronize_session=False)
    )
    return before - _links(session, tag_id)
