"""On PostgreSQL a delivery record need not wait for its disk flush; nothing else changes.

`SEND_RECORD_FLUSH_WAIT` is off by default: the recorder's connection commits with
`synchronous_commit = off` and hands the connection back to the pool as it found it, so a
sign-up or any other write on that pooled connection still waits for its flush.
"""

from __future__ import annotations

import pytest
import sqlalchemy as sa
from sqlalchemy.orm import Session

from newsletter.config import load_settings
from newsletter.delivery.claims import Recorder
from tests.helpers import TEST_DATABASE_URL

on_postgresql = pytest.mark.skipif(
    not TEST_DATABASE_URL.startswith("postgres"), reason="PostgreSQL's commit setting"
)


def _one_connection_engine() -> sa.Engine:
    url = sa.make_url(TEST_DATABASE_URL).set(drivername="postgresql+psycopg")
    return sa.create_engine(url, pool_size=1, max_overflow=0)


def _setting(conn: sa.Connection) -> str:
    return str(conn.exec_driver_sql("SHOW synchronous_commit").scalar())


@on_postgresql
@pytest.mark.parametrize(("flush_wait", "while_recording"), [(False, "off"), (True, "on")])
def test_the_recorder_commits_without_waiting_and_gives_the_connection_back_as_it_was(
    flush_wait: bool, while_recording: str
) -> None:
    engine = _one_connection_engine()
    try:
        with Session(engine) as session:
            recorder = Recorder(session, flush_wait=flush_wait)
            recorder._cur.execute("SHOW synchronous_commit")
            assert recorder._cur.fetchall()[0][0] == while_recording
            recorder.close()
            # The pool holds one connection: this is the one the recorder just gave back.
            with engine.connect() as conn:
                assert _setting(conn) == "on"
    finally:
        engine.dispose()


def test_the_setting_is_read_from_the_environment(tmp_path) -> None:
    base = {"NEWSLETTER_ENV": "testing"}
    assert load_settings(base, tmp_path).send_record_flush_wait is False
    waits = load_settings({**base, "SEND_RECORD_FLUSH_WAIT": "1"}, tmp_path)
    assert waits.send_record_flush_wait is True
