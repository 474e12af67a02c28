"""The record of an accepted copy travels while the next copy goes, never later than that.

On PostgreSQL the record of copy k is sent without waiting and its answer read once the relay
has taken copy k+1's envelope (``delivery.ahead``). The duplicate bound must not move: when
any copy's data ends at the relay, every copy the relay took before it is already recorded
as sent, so a worker dying then can resend at most the copy in flight. The relay here checks
that at the end of every copy's data; the send goes through a real worker and SMTP server,
with and without PIPELINING, on SQLite (where the record still waits) and PostgreSQL.
"""

from __future__ import annotations

import threading

import pytest
import sqlalchemy as sa
from sqlalchemy.orm import Session

from newsletter.delivery.reconnect import SteadyRecorder
from newsletter.extensions import db
from newsletter.issues.actions import issue_status
from newsletter.models import Delivery, DeliveryStatus, utcnow
from tests.helpers import TEST_DATABASE_URL
from tests.helpers.sending import claimed_delivery, deliveries, queue_issue

READERS = 40


def test_every_copy_taken_before_is_recorded_when_the_next_ends(
    fault_app, add_reader, run_jobs, sink
):
    issue_id, people = queue_issue(READERS, add_reader)
    seen: list[tuple[int, int]] = []  # (copies taken so far, copies recorded as sent)
    engine = db.engine
    held: list[threading.Timer] = []

    def hold_the_rows() -> None:
        # On PostgreSQL, as the first copy's data ends, lock every row of the issue for a
        # moment: that copy's record waits on the lock, so a worker that let the next copy's
        # data end before reading the record's answer would be caught below.
        conn = engine.connect()
        conn.execute(sa.select(Delivery.id).where(Delivery.issue_id == issue_id).with_for_update())
        timer = threading.Timer(0.5, lambda: (conn.commit(), conn.close()))
        held.append(timer)
        timer.start()

    def check() -> None:
        if not held and engine.dialect.name == "postgresql":
            hold_the_rows()
        with engine.connect() as conn:
            recorded = conn.execute(
                sa.select(sa.func.count())
                .select_from(Delivery)
                .where(Delivery.issue_id == issue_id, Delivery.status == DeliveryStatus.SENT)
            ).scalar_one()
        seen.append((len(sink.accepted), recorded))

    sink.on_data_end = check
    run_jobs()
    for timer in held:
        timer.join()
    assert issue_status(issue_id)["status"] == "sent"
    assert sorted(a.rcpt for a in sink.accepted) == sorted(p.email for p in people)
    assert len(seen) == READERS
    behind = [(taken, recorded) for taken, recorded in seen if recorded < taken]
    assert behind == [], "a copy's data ended while an earlier acceptance was unrecorded"
    assert {status for status, _, _ in deliveries(issue_id).values()} == {"sent"}


@pytest.mark.skipif(
    not TEST_DATABASE_URL.startswith("postgres"), reason="the record sent ahead is PostgreSQL's"
)
def test_a_record_sent_on_a_killed_connection_is_made_again_on_a_fresh_one(app, make_subscriber):
    delivery_id = claimed_delivery(make_subscriber, "ahead@example.com", "test-claim")
    with Session(db.engine) as session:
        recorder = SteadyRecorder(session, give_up_after=10)
        try:
            pid = recorder.call(lambda r: r._cur.connection.info.backend_pid)[0]
            with db.engine.connect() as conn:
                conn.execute(sa.text("SELECT pg_terminate_backend(:pid)"), {"pid": pid})
                conn.commit()
            assert recorder.start_sent(delivery_id, "test-claim", utcnow()) is True
            recorded, retried = recorder.finish_sent()
        finally:
            recorder.close()
    assert (recorded, retried) == (True, True)
    db.session.expire_all()
    row = db.session.get(Delivery, delivery_id)
    assert (row.status, row.claimed_by, row.attempts) == (DeliveryStatus.SENT, "test-claim", 1)
