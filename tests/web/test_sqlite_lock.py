"""On SQLite a request whose transaction finds the write lock taken waits in short steps.

Every transaction of the app takes SQLite's write lock at its start. Where another
connection holds it (another gunicorn worker's sign-up, an RQ worker's record), SQLite's own
busy wait would sleep a millisecond and more; the app's connections wait in short steps of
their own instead, as long as the busy timeout, and keep that timeout for every other
statement. A lock held past it fails the request with nothing changed.
"""

from __future__ import annotations

import sqlite3

import pytest
import sqlalchemy as sa

from newsletter import sqlite_setup
from newsletter.extensions import db
from tests.helpers import TEST_DATABASE_URL, csrf_from
from tests.helpers.readers import post_form, subscriber
from tests.helpers.sqlite_lock import hold_write_lock, lock_given_up_once_waited

pytestmark = pytest.mark.skipif(
    TEST_DATABASE_URL.startswith("postgres"), reason="SQLite's write lock"
)


def test_a_sign_up_waits_out_another_writer_and_is_stored_once_the_lock_is_free(app, monkeypatch):
    front = app.test_client()
    post_form(front, "warm@example.com")  # the pool's connection is open and set up
    with lock_given_up_once_waited(db.engine.url.database, monkeypatch) as released:
        answer = post_form(front, "waited@example.com", "Wanda")
        after_release = released.is_set()  # it went through after the lock was given up
    assert answer.status_code == 303 and answer.headers["Location"].endswith("/check-inbox")
    assert after_release
    sub = subscriber("waited@example.com")
    assert sub is not None and sub.name == "Wanda"
    # Every other statement keeps the connection's own busy timeout.
    with db.engine.connect() as conn:
        raw = conn.connection.driver_connection
        assert raw is not None
        assert raw.execute("PRAGMA busy_timeout").fetchone()[0] == sqlite_setup.BUSY_TIMEOUT_MS


def test_a_lock_held_past_the_busy_timeout_fails_the_request_and_stores_nothing(app, monkeypatch):
    front = app.test_client()
    token = csrf_from(front.get("/").text)  # the form, fetched before the lock is taken
    db.session.commit()  # the page's read ends (the test's app context outlives requests)
    monkeypatch.setattr(sqlite_setup, "BUSY_TIMEOUT_MS", 200)
    holder = hold_write_lock(db.engine.url.database)
    try:
        answer = front.post(
            "/subscribe", data={"email": "blocked@example.com", "csrf_token": token}
        )
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    assert answer.status_code == 503 and answer.headers["Retry-After"] == "5"
    assert "briefly unavailable" in answer.text and "Nothing was changed" in answer.text
    assert "Traceback" not in answer.text and "locked" not in answer.text
    assert subscriber("blocked@example.com") is None
    # The app's next request finds the database free and works as before.
    assert post_form(front, "after@example.com").status_code == 303
    assert subscriber("after@example.com") is not None


def test_a_connection_that_is_not_busy_but_broken_fails_at_once(app):
    with db.engine.connect() as conn:
        raw = conn.connection.driver_connection
        assert raw is not None
        calls = []

        def broken() -> None:
            calls.append(1)
            raise sqlite3.OperationalError("no such table: nowhere")

        with pytest.raises(sqlite3.OperationalError, match="no such table"):
            sqlite_setup.retry_busy(broken, timeout=5)
        assert calls == [1]
        assert conn.execute(sa.text("SELECT 1")).scalar_one() == 1
