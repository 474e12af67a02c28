"""On SQLite a record waits for the write lock in short steps of its own, as long as the app's.

SQLite's own busy wait sleeps a millisecond or more whenever another worker holds the write
lock, though a record holds it for tens of microseconds; the recorder's connection turns it
off and waits in short steps instead, for as long as the connection's busy timeout said, and
hands the connection back to the pool with that timeout.
"""

from __future__ import annotations

import sqlite3

import pytest
import sqlalchemy as sa
from sqlalchemy.orm import Session

from newsletter.delivery.claims import Recorder
from newsletter.extensions import db
from newsletter.models import Delivery, DeliveryStatus, utcnow
from tests.helpers import TEST_DATABASE_URL
from tests.helpers.sending import claimed_delivery
from tests.helpers.sqlite_lock import hold_write_lock, lock_given_up_once_waited

pytestmark = pytest.mark.skipif(
    TEST_DATABASE_URL.startswith("postgres"), reason="SQLite's write lock"
)


def _status(delivery_id: int) -> DeliveryStatus:
    db.session.expire_all()
    return db.session.get(Delivery, delivery_id).status


def test_a_record_waits_out_another_writer_and_lands_once_the_lock_is_free(
    app, make_subscriber, monkeypatch
):
    delivery_id = claimed_delivery(make_subscriber, "lock@example.com", "lock-claim")
    with (
        lock_given_up_once_waited(db.engine.url.database, monkeypatch) as released,
        Session(db.engine) as session,
    ):
        recorder = Recorder(session)
        try:
            assert recorder.sent(delivery_id, "lock-claim", utcnow()) is True
            assert released.is_set()  # it returned after the lock was given up, not before
        finally:
            recorder.close()
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
    holder = hold_write_lock(path)
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
