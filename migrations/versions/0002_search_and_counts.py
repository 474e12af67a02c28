"""search indexes and trigger-kept counts per subscriber status

Editor pages at a million subscribers: a substring search through an index (pg_trgm GIN on
PostgreSQL, FTS5 trigram on SQLite) and per-status counts without a scan (newsletter/search.py).
Neither is a model; newsletter.search.is_derived names them for schema comparisons.

Revision ID: 0002
Revises: 0001
"""

import logging

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

log = logging.getLogger("alembic.runtime.migration")

PG_UP = [
    "CREATE TABLE subscriber_count (status varchar(20) NOT NULL, n bigint NOT NULL)",
    "INSERT INTO subscriber_count (status, n) SELECT status, count(*) FROM subscriber"
    " GROUP BY status",
    # Statement-level with transition tables: a bulk INSERT adds one delta row per status.
    """CREATE FUNCTION subscriber_count_inserted() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        INSERT INTO subscriber_count (status, n)
        SELECT status, count(*) FROM subscriber_count_new GROUP BY status;
        RETURN NULL;
    END $$""",
    """CREATE FUNCTION subscriber_count_deleted() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        INSERT INTO subscriber_count (status, n)
        SELECT status, -count(*) FROM subscriber_count_old GROUP BY status;
        RETURN NULL;
    END $$""",
    """CREATE FUNCTION subscriber_count_moved() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        INSERT INTO subscriber_count (status, n) VALUES (OLD.status, -1), (NEW.status, 1);
        RETURN NULL;
    END $$""",
    """CREATE FUNCTION subscriber_count_truncated() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        DELETE FROM subscriber_count;
        RETURN NULL;
    END $$""",
    "CREATE TRIGGER subscriber_count_inserted AFTER INSERT ON subscriber"
    " REFERENCING NEW TABLE AS subscriber_count_new"
    " FOR EACH STATEMENT EXECUTE FUNCTION subscriber_count_inserted()",
    "CREATE TRIGGER subscriber_count_deleted AFTER DELETE ON subscriber"
    " REFERENCING OLD TABLE AS subscriber_count_old"
    " FOR EACH STATEMENT EXECUTE FUNCTION subscriber_count_deleted()",
    "CREATE TRIGGER subscriber_count_moved AFTER UPDATE OF status ON subscriber"
    " FOR EACH ROW WHEN (OLD.status IS DISTINCT FROM NEW.status)"
    " EXECUTE FUNCTION subscriber_count_moved()",
    "CREATE TRIGGER subscriber_count_truncated AFTER TRUNCATE ON subscriber"
    " FOR EACH STATEMENT EXECUTE FUNCTION subscriber_count_truncated()",
]
PG_DOWN = [
    "DROP INDEX IF EXISTS ix_subscriber_email_trgm",
    "DROP INDEX IF EXISTS ix_subscriber_name_trgm",
    "DROP TRIGGER IF EXISTS subscriber_count_inserted ON subscriber",
    "DROP TRIGGER IF EXISTS subscriber_count_deleted ON subscriber",
    "DROP TRIGGER IF EXISTS subscriber_count_moved ON subscriber",
    "DROP TRIGGER IF EXISTS subscriber_count_truncated ON subscriber",
    "DROP FUNCTION IF EXISTS subscriber_count_inserted()",
    "DROP FUNCTION IF EXISTS subscriber_count_deleted()",
    "DROP FUNCTION IF EXISTS subscriber_count_moved()",
    "DROP FUNCTION IF EXISTS subscriber_count_truncated()",
    "DROP TABLE IF EXISTS subscriber_count",
]

SQLITE_COUNT_UP = [
    # SQLite serialises writers anyway: one row per status, adjusted in place.
    "CREATE TABLE subscriber_count (status varchar(20) PRIMARY KEY, n integer NOT NULL)",
    "INSERT INTO subscriber_count (status, n) SELECT status, count(*) FROM subscriber"
    " GROUP BY status",
    """CREATE TRIGGER subscriber_count_inserted AFTER INSERT ON subscriber BEGIN
        INSERT INTO subscriber_count (status, n) VALUES (NEW.status, 1)
        ON CONFLICT (status) DO UPDATE SET n = n + 1;
    END""",
    """CREATE TRIGGER subscriber_count_deleted AFTER DELETE ON subscriber BEGIN
        INSERT INTO subscriber_count (status, n) VALUES (OLD.status, -1)
        ON CONFLICT (status) DO UPDATE SET n = n - 1;
    END""",
    """CREATE TRIGGER subscriber_count_moved AFTER UPDATE OF status ON subscriber
    WHEN OLD.status IS NOT NEW.status BEGIN
        UPDATE subscriber_count SET n = n - 1 WHERE status = OLD.status;
        INSERT INTO subscriber_count (status, n) VALUES (NEW.status, 1)
        ON CONFLICT (status) DO UPDATE SET n = n + 1;
    END""",
]
SQLITE_FTS_UP = [
    "CREATE VIRTUAL TABLE subscriber_search USING fts5("
    "email, name, content='subscriber', content_rowid='id', tokenize='trigram')",
    """CREATE TRIGGER subscriber_search_inserted AFTER INSERT ON subscriber BEGIN
        INSERT INTO subscriber_search (rowid, email, name) VALUES (NEW.id, NEW.email, NEW.name);
    END""",
    """CREATE TRIGGER subscriber_search_deleted AFTER DELETE ON subscriber BEGIN
        INSERT INTO subscriber_search (subscriber_search, rowid, email, name)
        VALUES ('delete', OLD.id, OLD.email, OLD.name);
    END""",
    """CREATE TRIGGER subscriber_search_changed AFTER UPDATE OF email, name ON subscriber BEGIN
        INSERT INTO subscriber_search (subscriber_search, rowid, email, name)
        VALUES ('delete', OLD.id, OLD.email, OLD.name);
        INSERT INTO subscriber_search (rowid, email, name) VALUES (NEW.id, NEW.email, NEW.name);
    END""",
    "INSERT INTO subscriber_search (subscriber_search) VALUES ('rebuild')",
]
SQLITE_DOWN = [
    "DROP TRIGGER IF EXISTS subscriber_search_inserted",
    "DROP TRIGGER IF EXISTS subscriber_search_deleted",
    "DROP TRIGGER IF EXISTS subscriber_search_changed",
    "DROP TABLE IF EXISTS subscriber_search",
    "DROP TRIGGER IF EXISTS subscriber_count_inserted",
    "DROP TRIGGER IF EXISTS subscriber_count_deleted",
    "DROP TRIGGER IF EXISTS subscriber_count_moved",
    "DROP TABLE IF EXISTS subscriber_count",
]


def upgrade():
    bind = op.get_bind()
    if bind.dialect.name == "postgresql":
        for statement in PG_UP:
            bind.exec_driver_sql(statement)
        _pg_trigram_indexes(bind)
        return
    for statement in SQLITE_COUNT_UP:
        bind.exec_driver_sql(statement)
    try:
        bind.exec_driver_sql(SQLITE_FTS_UP[0])
    except sa.exc.OperationalError as exc:
        # This SQLite has no FTS5 (or no trigram tokenizer, before 3.34): search uses LIKE.
        log.warning("no FTS5 trigram index for subscriber search (%s); LIKE it is", exc)
        return
    for statement in SQLITE_FTS_UP[1:]:
        bind.exec_driver_sql(statement)


def _pg_trigram_indexes(bind):
    try:
        with bind.begin_nested():
            bind.exec_driver_sql("CREATE EXTENSION IF NOT EXISTS pg_trgm")
    except sa.exc.DBAPIError as exc:
        # Creating an extension needs rights a hosted database may not grant: search still
        # works, by scanning.
        log.warning("pg_trgm unavailable (%s); subscriber search will scan", exc.orig)
        return
    bind.exec_driver_sql(
        "CREATE INDEX ix_subscriber_email_trgm ON subscriber USING gin (email gin_trgm_ops)"
    )
    bind.exec_driver_sql(
        "CREATE INDEX ix_subscriber_name_trgm ON subscriber USING gin (lower(name) gin_trgm_ops)"
    )


def downgrade():
    bind = op.get_bind()
    for statement in PG_DOWN if bind.dialect.name == "postgresql" else SQLITE_DOWN:
        bind.exec_driver_sql(statement)
