"""Migrations go up, down and up again, and leave the schema the models describe."""

from __future__ import annotations

import os
import uuid

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.config import Config
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from flask_migrate import downgrade, upgrade

from newsletter.app import create_app
from newsletter.extensions import db
from newsletter.models import Subscriber, SubscriberStatus
from newsletter.subscribers import search
from newsletter.subscribers.search import is_derived
from newsletter.subscribers.state import erase
from tests.helpers import TEST_DATABASE_URL


@pytest.fixture
def scratch_url(tmp_path):
    """An empty database of the configured kind, dropped afterwards."""
    if not TEST_DATABASE_URL:
        yield f"sqlite:///{tmp_path / 'migrations.sqlite3'}"
        return
    name = f"migrations_{uuid.uuid4().hex[:10]}"
    admin = sa.create_engine(
        TEST_DATABASE_URL.replace("postgresql://", "postgresql+psycopg://", 1),
        isolation_level="AUTOCOMMIT",
    )
    with admin.connect() as conn:
        conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    base = TEST_DATABASE_URL.rsplit("/", 1)[0]
    try:
        yield f"{base}/{name}"
    finally:
        with admin.connect() as conn:
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def _tables(engine: sa.Engine) -> set[str]:
    # The search index and the status counts are kept by triggers, not models.
    names = set(sa.inspect(engine).get_table_names()) - {"alembic_version"}
    return {n for n in names if not is_derived(n)}


def _modelled(name, type_, parent_names) -> bool:
    return not is_derived(name)


@pytest.fixture
def scratch_app(scratch_url, tmp_path, redis_url):
    """The app over that empty database, not yet migrated."""
    return create_app(
        {
            "DATABASE_URL": scratch_url,
            "NEWSLETTER_ENV": "testing",
            "INSTANCE_PATH": str(tmp_path / "instance"),
            "REDIS_URL": redis_url,
        }
    )


def test_upgrade_downgrade_upgrade_leaves_the_schema_of_the_models(scratch_app):
    app = scratch_app
    directory = app.config["MIGRATIONS_DIR"]
    with app.app_context():
        upgrade(directory=directory)
        assert _tables(db.engine) == set(db.metadata.tables)
        downgrade(directory=directory, revision="base")
        assert set(sa.inspect(db.engine).get_table_names()) <= {"alembic_version"}
        upgrade(directory=directory)
        assert _tables(db.engine) == set(db.metadata.tables)
        with db.engine.connect() as conn:
            context = MigrationContext.configure(conn, opts={"include_name": _modelled})
            diff = compare_metadata(context, db.metadata)
        assert diff == [], "models and migrations disagree; add a migration"
        db.engine.dispose()


def test_there_is_one_migration_head():
    directory = os.path.join(os.path.dirname(__file__), "..", "migrations")
    config = Config(os.path.join(directory, "alembic.ini"))
    config.set_main_option("script_location", directory)
    assert len(ScriptDirectory.from_config(config).get_heads()) == 1


def _row(conn, table: str, **values) -> int:
    names = ", ".join(values)
    marks = ", ".join(f":{k}" for k in values)
    return conn.execute(
        sa.text(f"INSERT INTO {table} ({names}) VALUES ({marks}) RETURNING id"), values
    ).scalar_one()


def test_upgrading_a_list_with_readers_keeps_them_their_history_and_deliveries(scratch_app):
    """0007 rebuilds SQLite's subscriber table: nothing pointing at it may be lost or cascade."""
    app = scratch_app
    directory = app.config["MIGRATIONS_DIR"]
    now = "2026-11-30 08:00:00"
    with app.app_context():
        upgrade(directory=directory, revision="0006")
        with db.engine.begin() as conn:
            people = {}
            for email, status in [
                ("ann@example.com", "confirmed"),
                ("bob@example.com", "confirmed"),
                ("cat@example.com", "pending"),
            ]:
                people[email] = _row(
                    conn,
                    "subscriber",
                    email=email,
                    name=email[:3].title(),
                    status=status,
                    version=1,
                    created_at=now,
                    updated_at=now,
                    source="form",
                    confirm_sent_count=0,
                )
                _row(
                    conn,
                    "subscriber_event",
                    subscriber_id=people[email],
                    kind="subscribed",
                    at=now,
                    detail="",
                )
            issue = _row(
                conn,
                "issue",
                slug="tip-one",
                subject="Tip one",
                body_md="Body",
                status="sent",
                created_at=now,
                updated_at=now,
                audience=2,
                batches=1,
                pause_reason="",
            )
            for email in ("ann@example.com", "bob@example.com"):
                _row(
                    conn,
                    "delivery",
                    issue_id=issue,
                    subscriber_id=people[email],
                    batch=0,
                    status="sent",
                    attempts=1,
                    last_error="",
                )
        # The newest reader is erased before the upgrade; the ids already given stay given.
        with db.engine.begin() as conn:
            conn.execute(sa.text("DELETE FROM subscriber WHERE email = 'cat@example.com'"))

        upgrade(directory=directory)

        session = db.session
        assert [(s.id, s.email, s.name) for s in search.page(session, "", "")] == [
            (people["bob@example.com"], "bob@example.com", "Bob"),
            (people["ann@example.com"], "ann@example.com", "Ann"),
        ]
        assert search.status_counts(session)["confirmed"] == 2
        assert [s.email for s in search.page(session, "bob@exa", "")] == ["bob@example.com"]
        kept = session.execute(sa.text("SELECT count(*) FROM subscriber_event")).scalar_one()
        sent = session.execute(sa.text("SELECT count(*) FROM delivery")).scalar_one()
        assert (kept, sent) == (2, 2)

        # After the upgrade: a new reader gets a fresh id, and erasing still cascades.
        erase(session, "bob@example.com")
        dan = Subscriber(email="dan@example.com", name="Dan", status=SubscriberStatus.PENDING)
        session.add(dan)
        session.commit()
        assert dan.id > people["bob@example.com"]
        assert [s.email for s in search.page(session, "example", "")] == [
            "dan@example.com",
            "ann@example.com",
        ]
        assert search.status_counts(session) == {
            **search.status_counts(session),
            "confirmed": 1,
            "pending": 1,
        }
        left = session.execute(sa.text("SELECT count(*) FROM subscriber_event")).scalar_one()
        orphaned = session.execute(
            sa.text("SELECT count(*) FROM delivery WHERE subscriber_id IS NULL")
        ).scalar_one()
        assert (left, orphaned) == (1, 1)  # Bob's history went; his delivery row is kept, unnamed
        session.remove()
        db.engine.dispose()


@pytest.mark.skipif(bool(TEST_DATABASE_URL), reason="SQLite only: PostgreSQL is not rebuilt")
def test_a_row_pointing_at_no_reader_stops_the_rebuild_and_changes_nothing(scratch_app):
    directory = scratch_app.config["MIGRATIONS_DIR"]
    with scratch_app.app_context():
        upgrade(directory=directory, revision="0006")
        table = "SELECT sql FROM sqlite_master WHERE name = 'subscriber'"
        with db.engine.connect() as conn:
            before = conn.exec_driver_sql(table).scalar_one()
        raw = db.engine.raw_connection()
        try:
            raw.execute("PRAGMA foreign_keys=OFF")  # how such a row could ever get in
            raw.execute(
                "INSERT INTO subscriber_event (subscriber_id, kind, at, detail)"
                " VALUES (99, 'confirmed', '2026-11-30 08:00:00', '')"
            )
            raw.execute("PRAGMA foreign_keys=ON")
        finally:
            raw.close()
        with pytest.raises(SystemExit):  # Flask-Migrate logs the error and exits 1
            upgrade(directory=directory)
        with db.engine.connect() as conn:
            assert (
                conn.exec_driver_sql("SELECT version_num FROM alembic_version").scalar() == "0006"
            )
            assert conn.exec_driver_sql(table).scalar_one() == before
            conn.exec_driver_sql("DELETE FROM subscriber_event WHERE subscriber_id = 99")
            conn.commit()
        upgrade(directory=directory)
        with db.engine.connect() as conn:
            assert "AUTOINCREMENT" in conn.exec_driver_sql(table).scalar_one()
        db.engine.dispose()
