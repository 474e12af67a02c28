"""The send's statements keep bounded plans on PostgreSQL, with or without planner statistics.

A list imported a second ago (or a server whose autovacuum is off) has no statistics, and the
planner then guesses. Each statement of the snapshot, the claim, the unsubscribe re-check and
the recording runs here under EXPLAIN ANALYZE on a database this test creates, and every scan
of the reader and delivery tables must read about a batch's worth of rows: a plan that
rescans every confirmed reader for each claimed row reads millions and fails.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from flask_migrate import upgrade

from newsletter.app import create_app
from newsletter.delivery import plan
from newsletter.delivery.claims import Recorder, claim
from newsletter.extensions import db
from newsletter.models import Delivery, DeliveryStatus, Issue, IssueStatus, Subscriber, utcnow
from tests.helpers import TEST_DATABASE_URL, TEST_SECRET_KEY

pytestmark = pytest.mark.skipif(
    not TEST_DATABASE_URL.startswith("postgres"), reason="PostgreSQL's planner"
)

READERS = 10_000
BATCH = 500  # a batch's rows: the most any scan of a claim should read
CHUNK = 200
TABLES = ("subscriber", "delivery")


@pytest.fixture
def fresh(tmp_path: Path, redis_url: str) -> Iterator[Any]:
    """An app on a database created for this test: migrated, autovacuum off, no statistics."""
    base = sa.make_url(TEST_DATABASE_URL)
    name = f"{base.database}_plans"
    admin = sa.create_engine(
        base.set(drivername="postgresql+psycopg"), isolation_level="AUTOCOMMIT"
    )
    with admin.connect() as conn:
        conn.exec_driver_sql(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        conn.exec_driver_sql(f"CREATE DATABASE {name}")
    app = create_app(
        {
            "NEWSLETTER_ENV": "testing",
            "INSTANCE_PATH": str(tmp_path / "instance"),
            "DATABASE_URL": base.set(database=name).render_as_string(hide_password=False),
            "REDIS_URL": redis_url,
            "SECRET_KEY": TEST_SECRET_KEY,
        }
    )
    try:
        with app.app_context():
            upgrade(directory=app.config["MIGRATIONS_DIR"])
            with db.engine.begin() as conn:
                for table in TABLES:  # no autovacuum will bring statistics midway
                    conn.exec_driver_sql(f"ALTER TABLE {table} SET (autovacuum_enabled = false)")
            yield app
            db.session.remove()
            db.engine.dispose()
    finally:
        with admin.connect() as conn:
            conn.exec_driver_sql(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        admin.dispose()


class Plans:
    """EXPLAIN ANALYZE every statement the app's engine runs, just before it runs for real."""

    def __init__(self) -> None:
        self.seen: list[tuple[str, dict[str, Any]]] = []

    def explain(self, cursor: Any, statement: str, parameters: Any, begin: str) -> None:
        if not statement.lstrip().upper().startswith(("SELECT", "INSERT", "UPDATE", "DELETE")):
            return
        cursor.execute(begin)
        cursor.execute("EXPLAIN (ANALYZE, FORMAT JSON) " + statement, parameters)
        self.seen.append((" ".join(statement.split()), cursor.fetchone()[0][0]["Plan"]))
        cursor.execute("ROLLBACK" if begin == "BEGIN" else "ROLLBACK TO SAVEPOINT plan_probe")

    def __enter__(self) -> Plans:
        sa.event.listen(db.engine, "before_cursor_execute", self._hook)
        return self

    def __exit__(self, *exc: object) -> None:
        sa.event.remove(db.engine, "before_cursor_execute", self._hook)

    def _hook(self, conn: Any, cursor: Any, statement: str, parameters: Any, *_: Any) -> None:
        self.explain(cursor, statement, parameters, "SAVEPOINT plan_probe")

    def take(self) -> list[tuple[str, dict[str, Any]]]:
        seen, self.seen = self.seen, []
        return seen


class _ExplainingCursor:
    """The recorder's own autocommit cursor, each statement explained in a rolled-back BEGIN."""

    def __init__(self, cursor: Any, plans: Plans) -> None:
        self._cursor, self._plans = cursor, plans

    def execute(self, statement: str, parameters: Any = None) -> Any:
        self._plans.explain(self._cursor, statement, parameters, "BEGIN")
        return self._cursor.execute(statement, parameters)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._cursor, name)


def _nodes(node: dict[str, Any]) -> Iterator[dict[str, Any]]:
    yield node
    for child in node.get("Plans", []):
        yield from _nodes(child)


def _table(node: dict[str, Any]) -> str | None:
    """Which of our two big tables a scan node reads (bitmap index scans name only the index)."""
    relation = node.get("Relation Name") or node.get("Index Name", "")
    return next((t for t in TABLES if t in relation), None)


def assert_bounded(statements: list[tuple[str, dict[str, Any]]], most: int) -> None:
    """Every scan of subscriber/delivery reads at most ``most`` rows over all its loops;
    subscriber rows are found only by primary key, delivery rows never by a sequential scan."""
    assert statements
    for sql, root in statements:
        for node in _nodes(root):
            table = _table(node)
            if table is None or "Actual Loops" not in node:
                continue
            read = node["Actual Loops"] * (
                node["Actual Rows"]
                + node.get("Rows Removed by Filter", 0)
                + node.get("Rows Removed by Index Recheck", 0)
            )
            what = f"{node['Node Type']} on {table} ({node.get('Index Name')}) in {sql[:160]}"
            assert read <= most, f"{what} read {read} rows over {node['Actual Loops']} loops"
            if most >= READERS:
                assert node["Actual Loops"] == 1, f"{what} rescanned"
                continue
            assert node["Node Type"] != "Seq Scan", what
            if table == "subscriber":
                assert node.get("Index Name") == "subscriber_pkey", what


def _statistics() -> set[str]:
    names = ", ".join(f"'{t}'" for t in TABLES)
    query = f"SELECT DISTINCT tablename FROM pg_stats WHERE tablename IN ({names})"
    return set(db.session.scalars(sa.text(query)))


def _fill_readers() -> None:
    """10,000 readers in one statement, as an import lands them: a few gone, a few paused."""
    db.session.execute(
        sa.text(f"""
        INSERT INTO subscriber (email, name, status, version, created_at, updated_at,
                                confirmed_at, source, confirm_sent_count, paused_until)
        SELECT 'reader' || g || '@example.com', 'Reader', CASE WHEN g % 20 = 0
               THEN 'unsubscribed' WHEN g % 50 = 1 THEN 'pending' ELSE 'confirmed' END,
               1, now(), now(), now(), 'import', 0,
               CASE WHEN g % 37 = 0 THEN now() + interval '30 days' END
        FROM generate_series(1, {READERS}) AS g
    """)
    )
    db.session.commit()


def _send_one_chunk(plans: Plans, issue_id: int, batch: int) -> None:
    """Claim a chunk of ``batch``, lose three readers, re-check, and record one acceptance."""
    now = utcnow()
    session = db.session()
    # Two readers of the batch leave after the snapshot: the claim must skip them.
    leaving = session.scalars(
        sa.select(Delivery.subscriber_id)
        .where(Delivery.issue_id == issue_id, Delivery.batch == batch)
        .where(Delivery.status == DeliveryStatus.QUEUED)
        .order_by(Delivery.id)
        .limit(2)
    ).all()
    session.execute(
        sa.update(Subscriber)
        .where(Subscriber.id.in_(leaving))
        .values(status="unsubscribed")
        .execution_options(synchronize_session=False)
    )
    session.commit()
    plans.take()

    with plans:
        rows = claim(session, issue_id, batch, "w:1", now, 60, CHUNK)
        session.commit()
    assert len(rows) == CHUNK
    assert [r.delivery_id for r in rows] == sorted(r.delivery_id for r in rows)
    assert not set(leaving) & {r.subscriber_id for r in rows}
    skipped = session.scalars(
        sa.select(Delivery.subscriber_id).where(
            Delivery.issue_id == issue_id, Delivery.last_error == "not subscribed at send time"
        )
    ).all()
    assert set(leaving) <= set(skipped)

    # One claimed reader leaves while the chunk is on the wire: the re-check finds them.
    gone = rows[5]
    session.execute(
        sa.update(Subscriber)
        .where(Subscriber.id == gone.subscriber_id)
        .values(status="unsubscribed")
        .execution_options(synchronize_session=False)
    )
    session.commit()
    recorder = Recorder(session)
    recorder._cur = _ExplainingCursor(recorder._cur, plans)  # type: ignore[assignment]
    try:
        assert recorder.no_longer_confirmed(issue_id, batch, "w:1") == {gone.delivery_id}
        assert recorder.sent(rows[0].delivery_id, "w:1", now + timedelta(seconds=1))
    finally:
        recorder.close()


def _issue() -> int:
    issue = Issue(slug=f"tip-{utcnow().timestamp()}", subject="Tip", body_md="Body")
    issue.status = IssueStatus.READY
    db.session.add(issue)
    db.session.commit()
    return issue.id


def test_every_send_statement_keeps_a_bounded_plan_without_statistics(fresh, monkeypatch):
    _fill_readers()
    assert _statistics() == set()
    plans = Plans()

    # As on a server where the snapshot's ANALYZE did not happen: nothing but guesses.
    with monkeypatch.context() as m:
        m.setattr(plan, "refresh_statistics", lambda *_tables: None)
        first = _issue()
        with plans:
            queued = plan.queue_issue(db.session(), first, utcnow(), BATCH)
            db.session.commit()
        assert queued.started and queued.audience == READERS - READERS // 20 - READERS // 50
        # The snapshot reads the audience once, no rescans (twice the rows: the explained
        # run, rolled back, leaves a dead copy of each row in the indexes the real run reads).
        assert_bounded(plans.take(), 2 * READERS)
        assert _statistics() == set()
        _send_one_chunk(plans, first, batch=7)
        assert _statistics() == set()
        assert_bounded(plans.take(), BATCH)

    # The snapshot refreshes the delivery table's statistics; the reader table still has none.
    second = _issue()
    queued = plan.queue_issue(db.session(), second, utcnow(), BATCH)
    db.session.commit()
    assert _statistics() == {"delivery"}
    _send_one_chunk(plans, second, batch=12)
    assert_bounded(plans.take(), BATCH)

    # And once both tables have statistics.
    db.session.execute(sa.text("ANALYZE subscriber"))
    db.session.commit()
    _send_one_chunk(plans, second, batch=3)
    assert_bounded(plans.take(), BATCH)
