"""The new-address sign-up on SQLite, run straight on the connection's DBAPI cursor.

Under a profiler, SQLAlchemy's execution around each of a sign-up's six statements (the
parameters, the result, the events) cost four times SQLite's own work on it, all inside the
transaction that holds SQLite's one write lock, which the other web workers wait on. So the
statements are compiled once (``prepared``: SQLAlchemy's SQL and type processing, nothing per
call) and run on the raw cursor, inside the Session's own transaction (``BEGIN IMMEDIATE``:
the write lock is held from the first statement to the commit, so no other sign-up comes
between the check that the address is new and its insert).
"""

from __future__ import annotations

import sqlite3
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

from newsletter.models import UTCDateTime
from newsletter.prepared import Prepared, prepared
from newsletter.subscribers.limits import (
    CONFIRM_PER_DAY,
    confirm_quota,
    slot_statement,
    take_statement,
)


def _when(*names: str) -> list[sa.BindParameter[Any]]:
    return [sa.bindparam(name, type_=UTCDateTime()) for name in names]


_KNOWN = sa.text("SELECT 1 FROM subscriber WHERE email = :email")
# Every column the ORM's insert would fill (the rest have server defaults or are NULL).
_ADD = sa.text(
    """
    INSERT INTO subscriber (email, name, status, version, created_at, updated_at, signup_ip,
                            source, confirm_sent_at, confirm_sent_day, confirm_sent_count,
                            confirm_due_at)
    VALUES (:email, :name, 'pending', 1, :at, :at, :ip, :source, :sent_at, :sent_day,
            :sent_count, :due)
    RETURNING id
    """
).bindparams(*_when("at", "sent_at", "due"), sa.bindparam("sent_day", type_=sa.Date()))
_SUBSCRIBED = """
    INSERT INTO subscriber_event (subscriber_id, kind, at, ip, detail)
    VALUES (:sid, 'subscribed', :at, :ip, :source)"""
_HISTORY = sa.text(_SUBSCRIBED).bindparams(*_when("at"))
_HISTORY_SENT = sa.text(_SUBSCRIBED + ", (:sid, 'confirmation_sent', :at, NULL, '')").bindparams(
    *_when("at")
)
_COUNT = sa.text(
    """
    INSERT INTO daily_stat (day, kind, count) VALUES (:day, 'subscribed', 1)
    ON CONFLICT (day, kind) DO UPDATE SET count = daily_stat.count + 1
    """
).bindparams(sa.bindparam("day", type_=sa.Date()))


_ADD_PARAMS = ("email", "name", "at", "ip", "source", "sent_at", "sent_day", "sent_count", "due")
_HISTORY_PARAMS = ("sid", "at", "ip", "source")
_QUOTA = ("q_key", "q_period", "q_at")


def _ready(stmt: Any, dialect: sa.Dialect, *names: str, **constants: Any) -> Prepared:
    """Return ``stmt`` compiled once; ``names`` are its per-call parameters."""
    return prepared(stmt, dialect, **dict.fromkeys(names), **constants)


def insert_new(
    session: Session, email: str, name: str, ip: str | None, source: str, now: datetime
) -> tuple[int, datetime | None] | None:
    """Insert a brand-new pending subscriber with its first confirmation reserved; return its
    id and when the mail is owed (None: the mailbox limit leaves none owed).

    Return None, having changed nothing, when the address is already known. Errors are
    SQLAlchemy's, as if the statements had gone through it.
    """
    conn = session.connection()  # begins the transaction, and with it the write lock
    raw = conn.connection.driver_connection
    assert raw is not None
    cur = _Cursor(raw.cursor(), conn.dialect)
    try:
        return _run(cur, email, name, ip, source, now)
    finally:
        cur.close()


class _Cursor:
    """The DBAPI cursor, its errors raised as SQLAlchemy's (the app answers those)."""

    def __init__(self, cur: Any, dialect: sa.Dialect) -> None:
        self.cur = cur
        self.dialect = dialect

    def run(self, prep: Prepared, **values: Any) -> Any:
        """Execute ``prep`` with ``values``; return its first row, if any."""
        params = prep.params(**values)
        try:
            return self.cur.execute(prep.sql, params).fetchone()
        except sqlite3.Error as exc:
            raise sa.exc.DBAPIError.instance(
                prep.sql, params, exc, sqlite3.Error, hide_parameters=True, dialect=self.dialect
            ) from exc

    def close(self) -> None:
        self.cur.close()


def _run(
    cur: _Cursor, email: str, name: str, ip: str | None, source: str, now: datetime
) -> tuple[int, datetime | None] | None:
    d = cur.dialect
    if cur.run(_ready(_KNOWN, d, "email"), email=email) is not None:
        return None
    due = _take(cur, email, now)
    sent_at, sent_day = (now, now.date()) if due is not None else (None, None)
    values = {"email": email, "name": name, "at": now, "ip": ip, "source": source}
    values |= {"sent_at": sent_at, "sent_day": sent_day, "sent_count": int(due is not None)}
    new_id = int(cur.run(_ready(_ADD, d, *_ADD_PARAMS), **values, due=due)[0])
    history = _ready(_HISTORY if due is None else _HISTORY_SENT, d, *_HISTORY_PARAMS)
    cur.run(history, sid=new_id, at=now, ip=ip, source=source)
    cur.run(_ready(_COUNT, d, "day"), day=now.date())
    return new_id, due


def _take(cur: _Cursor, email: str, now: datetime) -> datetime | None:
    """``limits.take_confirmation`` for a new address: count the mail under the mailbox's and
    the domain's limits; say when it may go (None: the mailbox had its share)."""
    quota = confirm_quota(email, now)
    d = cur.dialect
    take = _ready(take_statement("sqlite"), d, *_QUOTA, "q_cooled", q_cap=CONFIRM_PER_DAY)
    mailbox = {"q_key": quota.mailbox, "q_period": quota.day, "q_at": now}
    if cur.run(take, **mailbox, q_cooled=quota.cooled) is None:
        return None
    slot = _ready(slot_statement("sqlite"), d, *_QUOTA, "q_first")
    domain = {"q_key": quota.domain, "q_period": quota.window, "q_at": now}
    taken = cur.run(slot, **domain, q_first=quota.first_slot)
    return quota.slot_due(int(taken[0]) - 1, now)
