"""Subscriber ids are never handed out twice, on SQLite too (AUTOINCREMENT)

Without AUTOINCREMENT, SQLite gives a new row the largest id plus one: erase the newest
reader and the next sign-up gets their id, and with it every link the erased reader still
has in old mail (unsubscribe, confirm) and every id an outside system kept from the API or
a webhook. PostgreSQL's sequence never goes back; it needs nothing.

SQLite cannot add AUTOINCREMENT in place, so the table is rebuilt (SQLite's own procedure,
https://sqlite.org/lang_altertable.html#otheralter): a new table from the same CREATE
statement with the keyword added, the rows copied with their ids, the old table dropped, the
new one renamed, then its indexes and triggers (status counts, search index) made again from
their stored text. env.py switches foreign keys off around the migration (SQLite cannot do
it inside a transaction) so the drop cascades to nothing; the keys are checked before the
migration's transaction commits.

Revision ID: 0007
Revises: 0006
"""

import re

from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

TABLE = "subscriber"
SCRATCH = "subscriber_rebuilt"
# As SQLAlchemy wrote it (0001) and as it writes it with sqlite_autoincrement (models.py).
PLAIN_ID = "id INTEGER NOT NULL, "
AUTO_ID = "id INTEGER NOT NULL PRIMARY KEY AUTOINCREMENT, "
PK_CONSTRAINT = re.compile(r",\s*PRIMARY KEY \(id\)")


def upgrade():
    if op.get_bind().dialect.name == "sqlite":
        _rebuild(_with_autoincrement)


def downgrade():
    if op.get_bind().dialect.name == "sqlite":
        _rebuild(_without_autoincrement)


def _with_autoincrement(sql: str) -> str:
    if "AUTOINCREMENT" in sql:
        return sql
    if PLAIN_ID not in sql or not PK_CONSTRAINT.search(sql):
        raise RuntimeError(f"unexpected {TABLE} table definition; not rebuilt:\n{sql}")
    return PK_CONSTRAINT.sub("", sql.replace(PLAIN_ID, AUTO_ID, 1), count=1)


def _without_autoincrement(sql: str) -> str:
    if "AUTOINCREMENT" not in sql:
        return sql
    body = sql.replace(AUTO_ID, PLAIN_ID, 1)
    # The table constraints follow the last column: put the key back first among them.
    return re.sub(r",(\s*)UNIQUE \(email\)", r",\1PRIMARY KEY (id),\1UNIQUE (email)", body, count=1)


def _rebuild(rewrite) -> None:
    bind = op.get_bind()
    (fk_on,) = bind.exec_driver_sql("PRAGMA foreign_keys").one()
    if fk_on:
        # Dropping the table would cascade to every reader's history and deliveries.
        raise RuntimeError("foreign keys are on: the subscriber table cannot be rebuilt safely")
    (sql,) = bind.exec_driver_sql(
        "SELECT sql FROM sqlite_master WHERE type = 'table' AND name = ?", (TABLE,)
    ).one()
    new_sql = rewrite(sql)
    if new_sql == sql:
        return
    # Indexes (not the automatic one behind UNIQUE) and triggers, kept by their own text.
    extras = [
        row[0]
        for row in bind.exec_driver_sql(
            "SELECT sql FROM sqlite_master WHERE tbl_name = ? AND type IN ('index', 'trigger')"
            " AND sql IS NOT NULL ORDER BY type, name",
            (TABLE,),
        )
    ]
    columns = ", ".join(
        f'"{row[1]}"' for row in bind.exec_driver_sql(f"PRAGMA table_info({TABLE})")
    )
    head = re.compile(rf"^CREATE TABLE \"?{TABLE}\"?", re.IGNORECASE)
    bind.exec_driver_sql(head.sub(f"CREATE TABLE {SCRATCH}", new_sql, count=1))
    bind.exec_driver_sql(
        f"INSERT INTO {SCRATCH} ({columns}) SELECT {columns} FROM {TABLE} ORDER BY id"
    )
    bind.exec_driver_sql(f"DROP TABLE {TABLE}")
    bind.exec_driver_sql(f"ALTER TABLE {SCRATCH} RENAME TO {TABLE}")
    for statement in extras:
        bind.exec_driver_sql(statement)
    # Every row that pointed at a reader still does. If one does not (it never could with
    # foreign keys on), this migration's transaction rolls back: the database stays as it was.
    broken = bind.exec_driver_sql("PRAGMA foreign_key_check").fetchall()
    if broken:
        raise RuntimeError(
            f"rows point at nothing (table, rowid, parent): {[b[:3] for b in broken[:5]]}; "
            "nothing was changed. `PRAGMA foreign_key_check` lists them all; mend or delete "
            "them, then upgrade again."
        )
