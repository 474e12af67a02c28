"""SQLite workers checkpoint their WAL in a thread: it stays small during a long send."""

from __future__ import annotations

import os
import threading

import pytest
import sqlalchemy as sa

from newsletter.tasks.worker import WalCheckpointer


@pytest.fixture
def wal_engine(tmp_path):
    engine = sa.create_engine(
        f"sqlite:///{tmp_path / 'wal.sqlite3'}",
        connect_args={"isolation_level": None, "check_same_thread": False, "timeout": 30},
    )

    @sa.event.listens_for(engine, "connect")
    def tune(dbapi_conn, _record):
        dbapi_conn.execute("PRAGMA journal_mode=WAL")
        dbapi_conn.execute("PRAGMA synchronous=NORMAL")
        dbapi_conn.execute("PRAGMA wal_autocheckpoint=0")  # as a worker's connections

    with engine.connect() as conn:
        conn.exec_driver_sql("CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT)")
    yield engine
    engine.dispose()


def _write(engine, rows: int, start: int = 0) -> None:
    raw = engine.raw_connection()
    try:
        for i in range(start, start + rows):  # one commit each, as the Recorder does
            raw.cursor().execute("INSERT INTO t VALUES (?, ?)", (i, "x" * 500))
    finally:
        raw.close()


def test_a_wal_past_the_limit_is_emptied(wal_engine):
    wal = f"{wal_engine.url.database}-wal"
    checkpointer = WalCheckpointer(wal_engine, limit=256 << 10)
    _write(wal_engine, 20)  # ~100 KB of WAL
    checkpointer.checkpoint()  # small WAL: a passive checkpoint, the file stays
    assert 0 < os.path.getsize(wal) < 256 << 10

    writer = threading.Thread(target=_write, args=(wal_engine, 3000, 1000))
    writer.start()
    try:
        while writer.is_alive() and os.path.getsize(wal) <= 256 << 10:
            pass
        checkpointer.checkpoint()  # past the limit, with another connection still writing
    finally:
        writer.join()
    checkpointer.checkpoint()
    assert os.path.getsize(wal) < 512 << 10  # without it: ~2 MB, and growing with every write
    with wal_engine.connect() as conn:
        assert conn.exec_driver_sql("SELECT count(*) FROM t").scalar() == 3020
