"""How the app's SQLite connections are set up, and how they wait for the write lock.

Every transaction takes the write lock at its start (``BEGIN IMMEDIATE``): two writers never
deadlock on upgrading a read lock. Where another connection holds it, SQLite's own busy wait
sleeps 1 ms, then 2, then 5 and longer, though a sign-up or a delivery record holds the lock
for tens to hundreds of microseconds: two gunicorn or RQ workers that met on the lock each
idled a millisecond or more for a lock free again long before. So the statement that takes
the lock runs with SQLite's busy timeout at 0 and is tried again here after 20 µs, doubling
to at most 1 ms, until the connection's busy timeout has passed.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Callable
from typing import Any, TypeVar

import sqlalchemy as sa

T = TypeVar("T")

# How long a statement waits for a lock another connection holds.
BUSY_TIMEOUT_MS = 30000
FIRST_PAUSE = 20e-6
LONGEST_PAUSE = 1e-3


def is_busy(exc: BaseException | None) -> bool:
    """Say whether SQLite refused for a lock another connection holds (extended codes too)."""
    if not isinstance(exc, sqlite3.OperationalError):
        return False
    return getattr(exc, "sqlite_errorcode", 0) & 0xFF == sqlite3.SQLITE_BUSY


def retry_busy(run: Callable[[], T], timeout: float) -> T:
    """Call ``run`` (on a connection whose busy timeout is 0) until it finds the lock free.

    SQLite's own error is raised once ``timeout`` seconds have passed, as its busy timeout
    would have; any other error at once.
    """
    deadline = time.monotonic() + timeout
    pause = FIRST_PAUSE
    while True:
        try:
            return run()
        except sqlite3.OperationalError as exc:
            if not is_busy(exc) or time.monotonic() >= deadline:
                raise
        time.sleep(pause)
        pause = min(pause * 2, LONGEST_PAUSE)


def tune(engine: sa.Engine) -> None:
    """Set up each connection of the app's SQLite ``engine``, and its transactions' start."""

    @sa.event.listens_for(engine, "connect")
    def on_connect(dbapi_conn: Any, _record: Any) -> None:
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
        cur.execute("PRAGMA foreign_keys=ON")
        cur.execute("PRAGMA synchronous=NORMAL")
        cur.close()

    @sa.event.listens_for(engine, "begin")
    def on_begin(conn: sa.Connection) -> None:
        raw = conn.connection.driver_connection
        assert raw is not None
        raw.execute("PRAGMA busy_timeout=0")
        try:
            retry_busy(lambda: raw.execute("BEGIN IMMEDIATE"), BUSY_TIMEOUT_MS / 1000)
        except sqlite3.OperationalError as exc:
            # As SQLAlchemy would have raised it for a BEGIN that timed out.
            raise sa.exc.OperationalError("BEGIN IMMEDIATE", None, exc) from exc
        finally:
            raw.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
