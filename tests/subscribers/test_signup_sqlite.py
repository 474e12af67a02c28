"""On SQLite a new address's sign-up runs straight on the DBAPI cursor: a fault there is
answered and logged as any database fault, with nothing stored and the next sign-up fine."""

from __future__ import annotations

import logging

import pytest
import sqlalchemy as sa

from newsletter.extensions import db
from newsletter.models import ConfirmLimit
from tests.helpers import TEST_DATABASE_URL
from tests.helpers.readers import db_snapshot, outcome, post_form

pytestmark = pytest.mark.skipif(
    TEST_DATABASE_URL.startswith("postgres"), reason="SQLite's own sign-up path"
)


def _limits() -> int:
    n = db.session.scalar(sa.select(sa.func.count()).select_from(ConfirmLimit))
    db.session.commit()
    return int(n or 0)


def test_a_database_refusing_writes_mid_sign_up_stores_nothing_and_the_next_one_is_mailed(
    app, caplog, run_jobs, inbox
):
    front = app.test_client()
    assert outcome(post_form(front, "warm@example.com")) == "accepted"
    before, limits = db_snapshot(), _limits()

    def read_only(conn):
        # Once the transaction holds the write lock: the check that the address is new still
        # reads, the first write (the mailbox's count) fails.
        conn.connection.driver_connection.execute("PRAGMA query_only = ON")

    sa.event.listen(db.engine, "begin", read_only)
    caplog.set_level(logging.ERROR, logger="newsletter")
    try:
        answer = post_form(front, "refused@example.com", "Rita")
    finally:
        sa.event.remove(db.engine, "begin", read_only)
        db.engine.dispose()  # the pooled connections forget the setting
    assert answer.status_code == 500
    assert "Traceback" not in answer.text and "readonly" not in answer.text
    assert "unhandled error on /subscribe" in caplog.text
    # The log names the statement that failed (the mailbox's count), not the address.
    assert "attempt to write a readonly database" in caplog.text
    assert "INSERT INTO confirm_limit" in caplog.text and "refused@" not in caplog.text
    assert db_snapshot() == before and _limits() == limits

    assert outcome(post_form(front, "refused@example.com", "Rita")) == "accepted"
    run_jobs()
    assert sorted(m["To"] for m in inbox.wait_for(2)) == ["refused@example.com", "warm@example.com"]
