"""On SQLite a record waits for the write lock in short steps of its own, as long as the app's.

SQLite's own busy wait sleeps a millisecond or more whenever another worker holds the write
lock, though a record holds it for tens of microseconds; the recorder's connection turns it
off and waits in short steps instead, for as long as the connection's busy timeout said, and
hands the connection back to the pool with that timeout.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from types import SimpleNamespace

import pytest
import sqlalchemy as sa
from sqlalchemy.orm import Session

from newsletter import sqlite_setup
from newsletter.delivery.claims import Recorder
from newsletter.extensions import db
from newsletter.models import Delivery, DeliveryStatus, utcnow
from tests.helpers import TEST_DATABASE_URL
from tests.helpers.sending import claimed_delivery

pytestmark = pytest.mark.skipif(
    TEST_DATABASE_URL.startswith("postgres"), reason="SQLite's write lock"
)


def _status(delivery_id: int) -> DeliveryStatus:
    db.session.expire_all()
    return db.session.get(Delivery, delivery_id).status


def _holder(path: str) -> sqlite3.Connection:
    """Another process's view of the database: a connection that takes the write lock."""
    other = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    other.execute("BEGIN IMMEDIATE")
    return other


def test_a_record_waits_out_another_writer_and_lands_once_the_lock_is_free(
    app, make_subscriber, monkeypatch
):
    delivery_id = claimed_delivery(make_subscriber, "lock@example.com", "lock-claim")
    holder = _holder(db.engine.url.database)
    found_taken, released = threading.Event(), threading.Event()

    def pause(seconds: float) -> None:  # the recorder's own short wait: it found the lock taken
        found_taken.set()
        time.sleep(seconds)

    monkeypatch.setattr(
        sqlite_setup, "time", SimpleNamespace(monotonic=time.monotonic, sleep=pause)
    )

    def release() -> None:
        found_taken.wait(30)
        released.set()
        holder.execute("COMMIT")

    with Session(db.engine) as session:
        recorder = Recorder(session)
        try:
            threading.Thread(target=release).start()
            assert recorder.sent(delivery_id, "lock-claim", utcnow()) is True
            assert released.is_set()  # it returned after the lock was given up, not before
        finally:
            recorder.close()
            holder.close()
    assert _status(delivery_id) is DeliveryStatus.SENT


def test_a_lock_held_past_the_connections_busy_timeout_fails_the_record_and_changes_nothing(
    app, make_subscriber
):
    delivery_id = claimed_delivery(make_subscriber, "lock@example.com", "lock-claim")
    path = db.engine.url.database
    # The app's connections wait 30 s; one that waits 0.2 s shows the deadline in a test.
    engine = sa.create_engine(
        f"sqlite:///{path}", connect_args={"timeout": 0.2, "isolation_level": None}
    )
    holder = _holder(path)
    try:
        with Session(engine) as session:
            recorder = Recorder(session)
            try:
                with pytest.raises(sqlite3.OperationalError, match="locked"):
                    recorder.sent(delivery_id, "lock-claim", utcnow())
            finally:
                holder.execute("ROLLBACK")
                recorder.close()
    finally:
        holder.close()
        engine.dispose()
    assert _status(delivery_id) is DeliveryStatus.SENDING


def test_the_connection_goes_back_to_the_pool_with_the_apps_busy_timeout(app):
    with Session(db.engine) as session:
        recorder = Recorder(session)
        dbapi = recorder._closing.dbapi_connection  # the pooled sqlite3 connection itself
        assert dbapi is not None
        assert dbapi.execute("PRAGMA busy_timeout").fetchone()[0] == 0  # its own short waits
        recorder.close()
    assert dbapi.execute("PRAGMA busy_timeout").fetchone()[0] == 30000
