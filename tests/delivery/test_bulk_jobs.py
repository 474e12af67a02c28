"""Bulk unsubscribe and erase of a large filtered list, run by real worker processes a chunk
per transaction: progress on the page, a final report, and a worker killed mid-chunk leaving
no half-done chunk and nobody changed twice once the job is resumed."""

from __future__ import annotations

import os
import re
import signal
import time
from typing import Any

import pytest
import sqlalchemy as sa

from newsletter.extensions import db
from newsletter.models import DailyStat, EventKind, Subscriber, SubscriberEvent, SubscriberStatus
from newsletter.subscribers.bulk_jobs import CHUNK, BulkJob
from newsletter.subscribers.tags import ensure_tags
from tests.helpers.editors import editor_client, page_token

pytestmark = pytest.mark.slow
N = 1200  # more than two chunks, more than the request does itself


def _job() -> BulkJob:
    db.session.remove()
    found = db.session.scalar(sa.select(BulkJob).order_by(BulkJob.id.desc()).limit(1))
    assert found is not None
    db.session.commit()
    return found


def _count(*where: Any) -> int:
    db.session.remove()
    n = db.session.scalar(sa.select(sa.func.count()).select_from(Subscriber).where(*where))
    db.session.commit()
    return int(n or 0)


def _events() -> int:
    db.session.remove()
    n = db.session.scalar(
        sa.select(sa.func.count()).where(SubscriberEvent.kind == EventKind.UNSUBSCRIBED)
    )
    db.session.commit()
    return int(n or 0)


def until(check: Any, timeout: float = 60.0) -> None:
    """Wait for ``check()`` to come true, polling the database the workers write to."""
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def _post(client: Any, **data: str) -> Any:
    token = page_token(client, "/editor/subscribers")
    return client.post("/editor/subscribers/bulk", data={"csrf_token": token, "all": "yes", **data})


def test_a_large_erase_runs_on_a_worker_and_reports(world):
    world.subscribers(N)
    tagged = db.session.scalars(sa.select(Subscriber.id).order_by(Subscriber.id).limit(700)).all()
    tag_id = ensure_tags(db.session, ["group 7"])["group 7"]
    db.session.execute(
        sa.text("INSERT INTO subscriber_tag (subscriber_id, tag_id) VALUES (:s, :t)"),
        [{"s": s, "t": tag_id} for s in tagged],
    )
    db.session.commit()
    client = editor_client(world.app)
    # A wrong count erases nobody and starts nothing.
    wrong = _post(client, do="erase", tag="group 7", confirm_count="699")
    assert "Type the number of people to erase, 700" in client.get(wrong.headers["Location"]).text
    assert _count() == N
    assert db.session.scalar(sa.select(sa.func.count()).select_from(BulkJob)) == 0
    db.session.commit()

    answer = _post(client, do="erase", tag="group 7", confirm_count="700")
    page = answer.headers["Location"]
    waiting = client.get(page).text
    assert "Erasing 700 people" in waiting and "Waiting for a worker" in waiting
    assert '<meta http-equiv="refresh"' in waiting  # it follows the work by itself
    listed = client.get("/editor/subscribers").text
    assert re.search(r'id="bulk-running">.*Erasing 700 people: 0 done so far', listed, re.S)

    world.worker()
    until(lambda: _job().state == "done")
    done = client.get(page).text
    assert "Erased 700 people: no row holds their address or name any more." in done
    assert "700 of 700 gone through" in done and 'http-equiv="refresh"' not in done
    assert _count() == N - 700
    assert _count(Subscriber.id.in_(tagged)) == 0
    assert 'id="bulk-running"' not in client.get("/editor/subscribers").text


@pytest.mark.skipif(
    not os.environ.get("TEST_DATABASE_URL", "").startswith("postgresql"),
    reason="holding a worker mid-chunk takes a row lock, which only PostgreSQL has",
)
def test_a_worker_killed_mid_chunk_leaves_whole_chunks_and_a_resume_finishes_once(world):
    world.subscribers(N)
    ids = db.session.scalars(sa.select(Subscriber.id).order_by(Subscriber.id)).all()
    db.session.commit()
    client = editor_client(world.app)
    page = _post(client, do="unsubscribe", status="confirmed").headers["Location"]

    # Hold one person of the second chunk: the worker does the first, then waits on the lock.
    holder = db.engine.connect()
    hold = holder.begin()
    holder.execute(
        sa.text("SELECT id FROM subscriber WHERE id = :id FOR UPDATE"), {"id": ids[CHUNK + 10]}
    )
    proc = world.worker()

    blocked: list[int] = []

    def waits_on_the_lock() -> bool:
        with db.engine.connect() as conn:
            blocked[:] = conn.scalars(
                sa.text(
                    "SELECT pid FROM pg_stat_activity "
                    "WHERE datname = current_database() AND wait_event_type = 'Lock'"
                )
            ).all()
        return _job().seen == CHUNK and bool(blocked)

    until(waits_on_the_lock)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    hold.rollback()
    holder.close()

    def backend_gone() -> bool:
        with db.engine.connect() as conn:
            left = conn.scalar(
                sa.text("SELECT count(*) FROM pg_stat_activity WHERE pid = ANY(:pids)"),
                {"pids": blocked},
            )
        return not left

    # The killed worker's transaction ends with its connection, its chunk undone.
    until(backend_gone)
    # The first chunk whole, nothing of the second.
    assert _count(Subscriber.status == SubscriberStatus.UNSUBSCRIBED) == CHUNK
    assert _events() == CHUNK
    job = _job()
    assert (job.state, job.seen, job.changed, job.last_id) == (
        "running",
        CHUNK,
        CHUNK,
        ids[CHUNK - 1],
    )

    # Once the lease is over, the page says so and offers to resume.
    until(lambda: 'id="bulk-stuck"' in client.get(page).text)
    resumed = client.post(
        f"{page}/resume", data={"csrf_token": page_token(client, page)}, follow_redirects=True
    ).text
    assert "Queued again" in resumed
    world.worker()
    until(lambda: _job().state == "done")
    assert f"Unsubscribed {N} people (recorded as by you)." in client.get(page).text
    # Everyone once: one status change, one history line, one count each.
    assert _count(Subscriber.status == SubscriberStatus.UNSUBSCRIBED) == N
    assert _events() == N
    db.session.remove()
    counted = db.session.scalar(
        sa.select(sa.func.sum(DailyStat.count)).where(DailyStat.kind == "unsubscribed")
    )
    db.session.commit()
    assert counted == N
    assert _job().attempt == 2
