"""Tags on people: the rules for a tag's name, setting and adding them, counts per tag.

A tag is any label an editor gives people ("group 7", "vip"). Names are trimmed, 1–50
characters, plain text without commas (commas separate tags in a CSV cell and a form field),
and one tag whatever its case: "Group 7" and "group 7" are the same. Every function takes a
SQLAlchemy session and plain values; the caller commits.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import sqlalchemy as sa
from sqlalchemy.orm import Session
from sqlalchemy.orm.attributes import set_committed_value

from newsletter.errors import Invalid, NotFound
from newsletter.models import (
    MAX_TAG_LENGTH,
    EventKind,
    Subscriber,
    SubscriberEvent,
    SubscriberStatus,
    SubscriberTag,
    Tag,
    utcnow,
)
from newsletter.subscribers.state import dialect_insert

# More than this on one person is a mistake (a column pasted into the tags field), not a list.
MAX_TAGS_PER_PERSON = 100
# A tags field longer than this cannot hold MAX_TAGS_PER_PERSON good names: refused unread.
MAX_TAGS_TEXT = MAX_TAGS_PER_PERSON * (MAX_TAG_LENGTH + 2)


def clean_tag(raw: object) -> str:
    """Return a tag name fit to store (spaces trimmed and collapsed), or raise Invalid."""
    if not isinstance(raw, str):
        raise Invalid("tags", "A tag must be text.")
    value = " ".join(raw.split())
    if not value:
        raise Invalid("tags", "A tag cannot be empty or only spaces.")
    if len(value) > MAX_TAG_LENGTH:
        shown = value[:20] + "…"
        raise Invalid(
            "tags",
            "The tag %(tag)s is longer than %(limit)s characters.",
            tag=shown,
            limit=MAX_TAG_LENGTH,
        )
    if "," in value:
        raise Invalid("tags", "A tag cannot contain a comma: commas separate tags.")
    if any(c in value for c in "<>&\"'`") or "=?" in value:
        raise Invalid("tags", "A tag is plain text: no HTML, quotes or < > & characters.")
    if any(not c.isprintable() or c == "\ufffd" for c in value):
        raise Invalid("tags", "A tag cannot contain control characters.")
    return value


def parse_tags(raw: object) -> list[str]:
    """Return the distinct tag names in ``raw``: a comma-separated text or a list of names.

    Empty pieces of a comma-separated text ("a, ,b", a trailing comma) are ignored; an empty
    name in a list is refused. The same name twice, in any case, counts once.
    """
    if raw is None:
        return []
    if isinstance(raw, str):
        if len(raw) > MAX_TAGS_TEXT:
            raise Invalid(
                "tags",
                "Too many tags: one person can have at most %(limit)s.",
                limit=MAX_TAGS_PER_PERSON,
            )
        names = [clean_tag(piece) for piece in raw.split(",") if piece.strip()]
    elif isinstance(raw, list | tuple):
        if len(raw) > MAX_TAGS_PER_PERSON * 2:
            raise Invalid(
                "tags",
                "Too many tags: one person can have at most %(limit)s.",
                limit=MAX_TAGS_PER_PERSON,
            )
        names = [clean_tag(piece) for piece in raw]
    else:
        raise Invalid("tags", "Tags are a list of names, or names separated by commas.")
    seen: dict[str, str] = {}
    for name in names:
        seen.setdefault(name.lower(), name)
    if len(seen) > MAX_TAGS_PER_PERSON:
        raise Invalid(
            "tags",
            "Too many tags: one person can have at most %(limit)s.",
            limit=MAX_TAGS_PER_PERSON,
        )
    return list(seen.values())


def ensure_tags(session: Session, names: Sequence[str]) -> dict[str, int]:
    """Return the id of each (clean) tag name by its lower-cased key, creating missing tags."""
    if not names:
        return {}
    by_key = {name.lower(): name for name in names}
    insert = dialect_insert(session.get_bind().dialect.name)(Tag)
    now = utcnow()
    session.execute(
        insert.values(
            [{"name": n, "key": k, "created_at": now} for k, n in by_key.items()]
        ).on_conflict_do_nothing(index_elements=["key"])
    )
    rows = session.execute(sa.select(Tag.key, Tag.id).where(Tag.key.in_(list(by_key))))
    return {key: tag_id for key, tag_id in rows}


def find_tags(session: Session, names: Iterable[str]) -> list[Tag]:
    """Return the existing tags with these names (any case); raise NotFound naming the unknown."""
    wanted = {clean_tag(n).lower(): clean_tag(n) for n in names}
    found = list(session.scalars(sa.select(Tag).where(Tag.key.in_(list(wanted))).order_by(Tag.key)))
    missing = sorted(set(wanted) - {t.key for t in found})
    if missing:
        listed = ", ".join(wanted[k] for k in missing)
        raise NotFound(f"No tag named {listed}: check the spelling or tag someone first.")
    return found


def tag_names(session: Session, subscriber_ids: Iterable[int]) -> dict[int, list[str]]:
    """Return each subscriber's tag names, sorted, in one query."""
    ids = list(subscriber_ids)
    names: dict[int, list[str]] = {sid: [] for sid in ids}
    if not ids:
        return names
    rows = session.execute(
        sa.select(SubscriberTag.subscriber_id, Tag.name)
        .join(Tag, Tag.id == SubscriberTag.tag_id)
        .where(SubscriberTag.subscriber_id.in_(ids))
        .order_by(Tag.key)
    )
    for sid, name in rows:
        names[sid].append(name)
    return names


def preload_tags(session: Session, subs: Sequence[Subscriber]) -> None:
    """Load the tags of a page of people in one query (instead of one query each)."""
    if not subs:
        return
    by_id: dict[int, list[Tag]] = {s.id: [] for s in subs}
    rows = session.execute(
        sa.select(SubscriberTag.subscriber_id, Tag)
        .join(Tag, Tag.id == SubscriberTag.tag_id)
        .where(SubscriberTag.subscriber_id.in_(list(by_id)))
        .order_by(Tag.key)
    )
    for sid, tag in rows:
        by_id[sid].append(tag)
    for sub in subs:
        set_committed_value(sub, "tags", by_id[sub.id])


def _record(
    session: Session, sub_id: int, added: Sequence[str], removed: Sequence[str], by: str
) -> None:
    parts = [f"+{n}" for n in added] + [f"-{n}" for n in removed]
    detail = f"tags {' '.join(parts)} ({by})"
    if len(detail) > 200:
        detail = detail[:199] + "…"
    session.add(SubscriberEvent(subscriber_id=sub_id, kind=EventKind.EDITED, detail=detail))


def set_tags(session: Session, subscriber_id: int, names: Sequence[str], *, by: str) -> bool:
    """Make ``names`` the person's tags exactly; record the change in their history.

    Return whether anything changed.
    """
    current = tag_names(session, [subscriber_id])[subscriber_id]
    wanted = {n.lower(): n for n in names}
    have = {n.lower(): n for n in current}
    added = [wanted[k] for k in wanted if k not in have]
    removed = [have[k] for k in have if k not in wanted]
    if not added and not removed:
        return False
    if removed:
        gone = sa.select(Tag.id).where(Tag.key.in_([n.lower() for n in removed]))
        session.execute(
            sa.delete(SubscriberTag).where(
                SubscriberTag.subscriber_id == subscriber_id, SubscriberTag.tag_id.in_(gone)
            )
        )
    if added:
        _link(session, [subscriber_id], ensure_tags(session, added).values())
    _record(session, subscriber_id, added, removed, by)
    return True


def add_tags(session: Session, subscriber_id: int, names: Sequence[str], *, by: str) -> int:
    """Add tags to a person (those they have stay); return how many were new to them.

    Raises Invalid, having added nothing, when they would have more than MAX_TAGS_PER_PERSON.
    """
    if not names:
        return 0
    current = {n.lower() for n in tag_names(session, [subscriber_id])[subscriber_id]}
    added = [n for n in names if n.lower() not in current]
    if not added:
        return 0
    if len(current) + len(added) > MAX_TAGS_PER_PERSON:
        raise Invalid(
            "tags",
            "Too many tags: one person can have at most %(limit)s.",
            limit=MAX_TAGS_PER_PERSON,
        )
    _link(session, [subscriber_id], ensure_tags(session, added).values())
    _record(session, subscriber_id, added, [], by)
    return len(added)


def _link(session: Session, subscriber_ids: Sequence[int], tag_ids: Iterable[int]) -> None:
    rows = [{"subscriber_id": s, "tag_id": t} for s in subscriber_ids for t in tag_ids]
    if rows:
        insert = dialect_insert(session.get_bind().dialect.name)(SubscriberTag)
        session.execute(insert.values(rows).on_conflict_do_nothing())


def tag_counts(session: Session, *, confirmed: bool = True) -> list[tuple[str, int, int]]:
    """Return every tag's name, how many people carry it, and how many of them are confirmed.

    Without ``confirmed`` the last figure is 0 and only the link index is read (the list page
    shows this on every load); with it each link joins its person.
    """
    people = sa.func.count(SubscriberTag.subscriber_id)
    query = (
        sa.select(Tag.name, people)
        .select_from(Tag)
        .outerjoin(SubscriberTag, SubscriberTag.tag_id == Tag.id)
        .group_by(Tag.id, Tag.name, Tag.key)
        .order_by(Tag.key)
    )
    if not confirmed:
        return [(name, int(n or 0), 0) for name, n in session.execute(query)]
    yes = sa.func.sum(sa.case((Subscriber.status == SubscriberStatus.CONFIRMED, 1), else_=0))
    joined = query.add_columns(yes).outerjoin(
        Subscriber, Subscriber.id == SubscriberTag.subscriber_id
    )
    return [(name, int(n or 0), int(c or 0)) for name, n, c in session.execute(joined)]
