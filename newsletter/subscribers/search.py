"""Fast subscriber search and per-status counts at a million rows, on SQLite and PostgreSQL.

Both rest on objects the database keeps up to date itself (migration 0002), so every way a row
changes (the state machine, imports, erasure, a bulk INSERT) is covered:

- ``subscriber_count``: per-status counts kept by triggers. On PostgreSQL the triggers only
  append delta rows (no hot row for concurrent sign-ups to queue on) and a reader folds them
  together now and then; on SQLite, where writers are serialised anyway, one row per status.
- search: on PostgreSQL pg_trgm GIN indexes on ``email`` and ``lower(name)`` (skipped when the
  extension may not be created); on SQLite an FTS5 trigram index, ``subscriber_search``.

They are not models: ``DERIVED_TABLES``/``DERIVED_INDEXES`` name them for schema comparisons.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session, aliased

from newsletter.models import Subscriber, SubscriberStatus, SubscriberTag

COUNT_TABLE = "subscriber_count"
FTS_TABLE = "subscriber_search"
DERIVED_TABLES = (COUNT_TABLE, FTS_TABLE)
DERIVED_INDEXES = ("ix_subscriber_email_trgm", "ix_subscriber_name_trgm")
# PostgreSQL: fold the appended delta rows into one per status once there are this many.
FOLD_AFTER = 200
# PostgreSQL: look this many ids back in id order first; a common term is found there at once.
NEAR_WINDOW = 5_000
_FOLD_LOCK = 0x5C0C  # advisory lock key: one folder at a time

_count = sa.table(COUNT_TABLE, sa.column("status", sa.String), sa.column("n", sa.BigInteger))
_fts = sa.table(FTS_TABLE, sa.column("rowid", sa.Integer))
_has_fts: dict[str, bool] = {}


def is_derived(name: str | None) -> bool:
    """Tell whether a table or index belongs to the search/count machinery, not to the models."""
    if not name:
        return False
    return name in DERIVED_INDEXES or any(
        name == t or name.startswith(t + "_") for t in DERIVED_TABLES
    )


def status_counts(session: Session) -> dict[str, int]:
    """Return the number of subscribers in each status, from the trigger-kept counts."""
    counts = dict.fromkeys((s.value for s in SubscriberStatus), 0)
    rows = 0
    for status, n, parts in session.execute(
        sa.select(_count.c.status, sa.func.sum(_count.c.n), sa.func.count()).group_by(
            _count.c.status
        )
    ):
        if status in counts:
            counts[status] = int(n or 0)
        rows += parts
    if rows > FOLD_AFTER and session.get_bind().dialect.name == "postgresql":
        fold_counts(session)
    return counts


def fold_counts(session: Session) -> None:
    """Fold PostgreSQL's appended count deltas into one row per status (and commit that)."""
    if not session.scalar(sa.select(sa.func.pg_try_advisory_xact_lock(_FOLD_LOCK))):
        session.rollback()
        return
    session.execute(
        sa.text(
            f"WITH gone AS (DELETE FROM {COUNT_TABLE} RETURNING status, n) "
            f"INSERT INTO {COUNT_TABLE} (status, n) "
            "SELECT status, sum(n) FROM gone GROUP BY status"
        )
    )
    session.commit()


def carries(tag_id: int) -> sa.Exists:
    """SQL saying that a subscriber row carries the tag ``tag_id`` (through its index)."""
    return sa.exists().where(
        SubscriberTag.subscriber_id == Subscriber.id, SubscriberTag.tag_id == tag_id
    )


def like_clause(q: str, entity: Any = Subscriber) -> sa.ColumnElement[bool]:
    """Match a term anywhere in the address or the name, case-insensitively (plain LIKE)."""
    escaped = q.lower().replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    like = f"%{escaped}%"
    return sa.or_(
        entity.email.like(like, escape="\\"),
        sa.func.lower(entity.name).like(like, escape="\\"),
    )


def fts_available(session: Session) -> bool:
    """Tell whether SQLite's trigram index exists (SQLite built without FTS5 has none)."""
    key = str(session.get_bind().engine.url)
    if key not in _has_fts:
        _has_fts[key] = bool(
            session.scalar(
                sa.text("SELECT count(*) FROM sqlite_master WHERE name = :n"), {"n": FTS_TABLE}
            )
        )
    return _has_fts[key]


def page(
    session: Session,
    q: str,
    status: str,
    *,
    after: int | None = None,
    before: int | None = None,
    limit: int = 50,
    tag: int | None = None,
) -> list[Subscriber]:
    """Return up to ``limit`` matching subscribers next to a cursor, in the order walked.

    Newest first below ``after`` (or from the top); oldest first above ``before``. ``tag``:
    only the people who carry the tag of that id.
    """
    ascending = before is not None
    cursor = before if ascending else after

    def base() -> sa.Select:
        query = sa.select(Subscriber)
        if status:
            query = query.where(Subscriber.status == status)
        if tag is not None:
            query = query.where(carries(tag))
        if cursor is not None:
            query = query.where(Subscriber.id > cursor if ascending else Subscriber.id < cursor)
        return query

    order = Subscriber.id.asc() if ascending else Subscriber.id.desc()
    if not q:
        return list(session.scalars(base().order_by(order).limit(limit)))
    dialect = session.get_bind().dialect.name
    if dialect == "sqlite" and len(q) >= 3 and fts_available(session):
        return _fts_page(session, base(), q, ascending, limit)
    if dialect == "postgresql":
        return _near_then_indexed(session, base(), q, ascending, cursor, limit)
    return list(session.scalars(base().where(like_clause(q)).order_by(order).limit(limit)))


def _fts_page(
    session: Session, query: sa.Select, q: str, ascending: bool, limit: int
) -> list[Subscriber]:
    # Walk the trigram index in id order and stop at ``limit``: no sort, no full match list.
    phrase = '"' + q.replace('"', '""') + '"'
    order = _fts.c.rowid.asc() if ascending else _fts.c.rowid.desc()
    query = (
        query.join(_fts, _fts.c.rowid == Subscriber.id)
        .where(sa.literal_column(FTS_TABLE).op("MATCH")(phrase))
        .order_by(order)
        .limit(limit)
    )
    return list(session.scalars(query))


def _near_then_indexed(
    session: Session, query: sa.Select, q: str, ascending: bool, cursor: int | None, limit: int
) -> list[Subscriber]:
    # A common term is found among the nearest ids at once; a rare one is found through the
    # trigram indexes. Left to itself, the planner walks the primary key for both and reads
    # the whole table when the matches are all far away.
    if cursor is None:
        top = session.scalar(sa.select(sa.func.max(Subscriber.id)))
        if top is None:
            return []
        cursor = top + 1
    far = cursor + NEAR_WINDOW if ascending else cursor - NEAR_WINDOW
    near_range = Subscriber.id <= far if ascending else Subscriber.id >= far
    order = Subscriber.id.asc() if ascending else Subscriber.id.desc()
    # OFFSET 0 fences the window off: the planner must read it in id order and filter it,
    # rather than intersect posting lists of trigrams every address has ("com", "@ex" …).
    near = aliased(Subscriber, query.where(near_range).order_by(order).offset(0).subquery("near"))
    rows = list(
        session.scalars(
            sa.select(near)
            .where(like_clause(q, near))
            .order_by(near.id.asc() if ascending else near.id.desc())
            .limit(limit)
        )
    )
    if len(rows) >= limit:
        return rows
    # "id + 0" hides the primary key's order from the planner, so it takes the GIN bitmap.
    beyond = Subscriber.id > far if ascending else Subscriber.id < far
    key = Subscriber.id + 0
    rows += session.scalars(
        query.where(like_clause(q), beyond)
        .order_by(key.asc() if ascending else key.desc())
        .limit(limit - len(rows))
    )
    return rows
