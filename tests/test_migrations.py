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
from newsletter.subscribers.search import is_derived
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


def test_upgrade_downgrade_upgrade_leaves_the_schema_of_the_models(
    scratch_url, tmp_path, redis_url
):
    app = create_app(
        {
            "DATABASE_URL": scratch_url,
            "NEWSLETTER_ENV": "testing",
            "INSTANCE_PATH": str(tmp_path / "instance"),
            "REDIS_URL": redis_url,
        }
    )
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
