"""What a durable record per copy costs PostgreSQL at the least: the backend's CPU per statement.

    .venv/bin/python bench/record_floor.py --database-url postgresql://postgres@127.0.0.1/postgres
        [--n 20000] [--rounds 3]

SPEC bounds a crash's duplicates to the copy in flight, so each accepted copy is recorded by a
committed statement of its own before the next copy's data ends. This measures, on the
product's own schema (a throwaway database migrated as `newsletter db upgrade` does, N
confirmed readers, N deliveries claimed), the CPU the PostgreSQL backend spends per
statement, read from /proc for that backend (and the client's own CPU per statement, the
worker's side of it), each statement prepared once, sent through libpq and autocommitted with
``synchronous_commit = off`` as the worker's recorder runs it (``delivery.ahead``):

* ``round trip``: ``SELECT 1``: what any statement per copy costs at the least;
* ``record``: the worker's own statement (``delivery.claims._RECORD_SENT``) on ``delivery``,
  whose ``status`` is in an index, so no update is HOT and each writes every index;
* ``record, HOT``: the same on a copy of ``delivery`` with ``status`` in no index (fillfactor
  90): what taking ``status`` out of every index could save at best;
* ``outcome row``: an INSERT into a two-column table: an append-only record.

Then the statements every copy needs before its record, the product's own, measured per copy
over a whole issue of N readers (all of the database's backends, from /proc):

* ``snapshot``: ``delivery.plan.queue_issue``: the copy's row, made when the send is queued;
* ``claim``: ``delivery.claims.claim`` over every batch, in chunks as a worker takes them.

Without ``--database-url`` the same two first statements run on SQLite (a temporary file, the
app's own connection settings: WAL, ``synchronous = NORMAL``), in-process: each record is a
write transaction holding SQLite's one write lock, so its wall time here is what caps the
records of all workers together (1 s / that time, per second).

Linux only (/proc). The database is dropped at the end.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import Instance, insert_confirmed, print_machine  # noqa: E402
from common import backend_cpu as database_cpu  # noqa: E402

TICK = os.sysconf("SC_CLK_TCK")


def backend_cpu(pid: int) -> float:
    """Return the CPU seconds (user + system) the backend ``pid`` has used so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK


def prepare(conn, inst: Instance, n: int) -> None:  # type: ignore[no-untyped-def]
    """Fill the throwaway database: an issue, N readers, N deliveries claimed by 'floor'."""
    app = inst.app()
    insert_confirmed(app, n)
    from newsletter.extensions import db
    from newsletter.issues.actions import create_issue

    with app.app_context():
        issue_id = create_issue("Floor", "The record's floor.").id
        db.session.remove()
        db.engine.dispose()
    conn.execute("UPDATE issue SET status = 'sending' WHERE id = %s", (issue_id,))
    conn.execute(
        "INSERT INTO delivery (issue_id, subscriber_id, batch, status, attempts, claimed_by,"
        " lease_until, last_error) SELECT %s, id, 0, 'sending', 0, 'floor',"
        " now() + interval '1 hour', '' FROM subscriber ORDER BY id",
        (issue_id,),
    )
    # The same rows in a table with ``status`` in no index: every update can be HOT.
    conn.execute(
        "CREATE TABLE delivery_hot (LIKE delivery INCLUDING DEFAULTS) WITH (fillfactor = 90)"
    )
    conn.execute("INSERT INTO delivery_hot SELECT * FROM delivery")
    conn.execute("ALTER TABLE delivery_hot ADD PRIMARY KEY (id)")
    conn.execute("CREATE UNIQUE INDEX ON delivery_hot (issue_id, subscriber_id)")
    conn.execute("CREATE INDEX ON delivery_hot (subscriber_id)")
    conn.execute("CREATE INDEX ON delivery_hot (issue_id, batch, id)")
    conn.execute("CREATE TABLE outcome (delivery_id bigint PRIMARY KEY, sent_at timestamptz)")
    conn.execute("VACUUM ANALYZE")


def reset(conn) -> None:  # type: ignore[no-untyped-def]
    """Put every delivery back in 'sending' and empty the outcome table, then vacuum."""
    for table in ("delivery", "delivery_hot"):
        conn.execute(
            f"UPDATE {table} SET status = 'sending', sent_at = NULL, attempts = 0,"  # noqa: S608
            " lease_until = now() + interval '1 hour'"
        )
    conn.execute("TRUNCATE outcome")
    conn.execute("VACUUM ANALYZE")


def main(argv: list[str] | None = None) -> int:
    """Measure each statement's backend CPU over N executions, ``--rounds`` times."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--database-url", help="a PostgreSQL server (default: SQLite)")
    parser.add_argument("--n", type=int, default=20000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--smoke", action="store_true", help="2,000 statements, 1 round (CI)")
    args = parser.parse_args(argv)
    if args.smoke:
        args.n, args.rounds = 2000, 1  # enough for /proc's 10 ms ticks to count
    if not args.database_url:
        return sqlite_floor(args.n, args.rounds)
    import psycopg

    from newsletter.delivery.ahead import RecordAhead
    from newsletter.delivery.claims import _RECORD_SENT
    from newsletter.models import utcnow
    from newsletter.prepared import Prepared

    print_machine()
    inst = Instance(args.database_url)
    try:
        url = inst.database_url.replace("postgresql+psycopg://", "postgresql://")
        with psycopg.connect(url, autocommit=True) as admin:
            prepare(admin, inst, args.n)
            ids = [r[0] for r in admin.execute("SELECT id FROM delivery ORDER BY id")]
        # The worker's statement, compiled and its constants processed as its recorder does.
        from sqlalchemy.dialects.postgresql import psycopg as pg_psycopg

        sample = {"delivery_id": 0, "claim_id": "", "now": utcnow()}
        prepared = Prepared(_RECORD_SENT, pg_psycopg.dialect(), **sample)
        record = prepared.sql
        record_hot = record.replace("UPDATE delivery ", "UPDATE delivery_hot AS delivery ", 1)
        outcome = "INSERT INTO outcome (delivery_id, sent_at) VALUES (%(delivery_id)s, %(now)s)"
        kinds = {
            "round trip": "SELECT 1 WHERE %(delivery_id)s::bigint IS NOT NULL",
            "record": record,
            "record, HOT": record_hot,
            "outcome row": outcome,
        }
        figures: dict[str, list[tuple[float, float, float]]] = {k: [] for k in kinds}
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute("SET synchronous_commit = off")
            pid = conn.execute("SELECT pg_backend_pid()").fetchone()[0]  # type: ignore[index]
            for _ in range(args.rounds):
                with psycopg.connect(url, autocommit=True) as admin:
                    reset(admin)
                for kind, sql in kinds.items():
                    # As the worker records: prepared once, each a Bind and Execute sent
                    # through libpq and its answer read (``delivery.ahead``).
                    ahead = RecordAhead(conn, sql, prepared.base)
                    cpu0, wall0 = backend_cpu(pid), time.perf_counter()
                    own0 = time.process_time()
                    takes_claim, takes_now = "%(claim_id)s" in sql, "%(now)s" in sql
                    for delivery_id in ids:
                        values: dict[str, object] = {"delivery_id": delivery_id}
                        if takes_claim:
                            values["claim_id"] = "floor"
                        if takes_now:
                            values["now"] = utcnow()
                        ahead.start(**values)
                        ahead.finish()
                    count = len(ids)
                    ahead.close()
                    own = (time.process_time() - own0) / count * 1e6
                    cpu = (backend_cpu(pid) - cpu0) / count * 1e6
                    wall = (time.perf_counter() - wall0) / count * 1e6
                    figures[kind].append((cpu, wall, own))
            sent = conn.execute("SELECT count(*) FROM delivery WHERE status = 'sent'").fetchone()
        print(f"\n{args.n} statements per kind, {args.rounds} rounds; backend CPU per statement:")
        print(f"{'statement':<14}{'backend µs':>12}{'range':>14}{'wall µs':>9}{'client µs':>11}")
        for kind, runs in figures.items():
            cpus = [c for c, _, _ in runs]
            wall = statistics.median(w for _, w, _ in runs)
            own = statistics.median(o for _, _, o in runs)
            spread = f"{min(cpus):.0f}–{max(cpus):.0f}"
            print(f"{kind:<14}{statistics.median(cpus):>12.0f}{spread:>14}{wall:>9.0f}{own:>11.0f}")
            print(
                f"RESULT record_floor statement={kind.replace(' ', '_').replace(',', '')} "
                f"backend_us={statistics.median(cpus):.1f} wall_us={wall:.1f} client_us={own:.1f}"
            )
        print(f"deliveries recorded sent by the last round: {sent[0] if sent else 0} of {args.n}")
        before_record(inst, args.rounds)
    finally:
        inst.close()
    return 0


def before_record(inst: Instance, rounds: int) -> None:
    """Print the backends' CPU per copy of the product's snapshot and claims, ``rounds`` times."""
    from newsletter.delivery.claims import claim
    from newsletter.delivery.plan import queue_issue
    from newsletter.extensions import db, settings
    from newsletter.issues.actions import create_issue
    from newsletter.models import utcnow

    app = inst.app()
    figures: dict[str, list[float]] = {"snapshot": [], "claim": []}

    def spent(before: dict[int, float]) -> float:
        after = database_cpu(app)
        return sum(cpu - before.get(pid, 0.0) for pid, cpu in after.items())

    with app.app_context():
        session = db.session()
        for n_round in range(rounds):
            issue_id = create_issue(f"Before the record {n_round}", "Claimed, not sent.").id
            before = database_cpu(app)
            queued = queue_issue(session, issue_id, utcnow(), settings().batch_size)
            session.commit()
            figures["snapshot"].append(spent(before) / queued.audience * 1e6)
            before, taken = database_cpu(app), 0
            for batch in range(queued.batches):
                while chunk := claim(session, issue_id, batch, "floor", utcnow(), 3600):
                    session.commit()
                    taken += len(chunk)
                session.commit()
            figures["claim"].append(spent(before) / max(taken, 1) * 1e6)
        db.session.remove()
        db.engine.dispose()
    print(f"\nthe product's statements before the record, {queued.audience} copies per round:")
    print(f"{'statement':<14}{'backend µs per copy':>21}{'range':>12}")
    for kind, cpus in figures.items():
        spread = f"{min(cpus):.0f}–{max(cpus):.0f}"
        print(f"{kind:<14}{statistics.median(cpus):>21.1f}{spread:>12}")
        print(f"RESULT record_floor statement={kind} backend_us={statistics.median(cpus):.1f}")
    print(f"copies claimed by the last round: {taken} of {queued.audience}")


def sqlite_floor(n: int, rounds: int) -> int:
    """The round trip and the record on SQLite, in-process: CPU and wall per commit."""
    import sqlalchemy as sa

    from newsletter.delivery.claims import _RECORD_SENT
    from newsletter.extensions import db
    from newsletter.issues.actions import create_issue
    from newsletter.models import utcnow
    from newsletter.prepared import Prepared

    print_machine()
    inst = Instance()
    try:
        app = inst.app()
        insert_confirmed(app, n)
        with app.app_context():
            issue_id = create_issue("Floor", "The record's floor.").id
            db.session.execute(sa.text("UPDATE issue SET status = 'sending'"))
            db.session.execute(
                sa.text(
                    "INSERT INTO delivery (issue_id, subscriber_id, batch, status, attempts,"
                    " claimed_by, last_error) SELECT :issue, id, 0, 'sending', 0, 'floor', ''"
                    " FROM subscriber ORDER BY id"
                ),
                {"issue": issue_id},
            )
            db.session.commit()
            ids = [r[0] for r in db.session.execute(sa.text("SELECT id FROM delivery"))]
            engine = db.engine
            db.session.remove()
        sample = {"delivery_id": 0, "claim_id": "", "now": utcnow()}
        prepared = Prepared(_RECORD_SENT, engine.dialect, **sample)
        kinds = {"round trip": "SELECT ?", "record": prepared.sql}
        figures: dict[str, list[tuple[float, float]]] = {k: [] for k in kinds}
        raw = engine.raw_connection()  # the app's own settings: WAL, autocommit, NORMAL sync
        try:
            cur = raw.cursor()
            for _ in range(rounds):
                cur.execute("UPDATE delivery SET status = 'sending', attempts = 0")
                for kind, sql in kinds.items():

                    def params(delivery_id: int, kind: str = kind) -> Any:
                        if kind == "round trip":
                            return (delivery_id,)
                        return prepared.params(
                            delivery_id=delivery_id, claim_id="floor", now=utcnow()
                        )

                    cpu0, wall0 = time.process_time(), time.perf_counter()
                    for delivery_id in ids:
                        cur.execute(sql, params(delivery_id))
                        cur.fetchall()
                    cpu = (time.process_time() - cpu0) / len(ids) * 1e6
                    figures[kind].append((cpu, (time.perf_counter() - wall0) / len(ids) * 1e6))
            cur.execute("SELECT count(*) FROM delivery WHERE status = 'sent'")
            sent = cur.fetchone()
        finally:
            raw.close()
        print(f"\n{n} statements per kind, {rounds} rounds; SQLite, in-process, per statement:")
        print(f"{'statement':<14}{'CPU µs':>8}{'wall µs':>9}{'at most per s':>15}")
        for kind, runs in figures.items():
            cpu = statistics.median(c for c, _ in runs)
            wall = statistics.median(w for _, w in runs)
            print(f"{kind:<14}{cpu:>8.0f}{wall:>9.0f}{1e6 / wall:>15,.0f}")
            print(
                f"RESULT record_floor database=sqlite statement={kind.replace(' ', '_')} "
                f"cpu_us={cpu:.1f} wall_us={wall:.1f}"
            )
        print(f"deliveries recorded sent by the last round: {sent[0] if sent else 0} of {n}")
        with app.app_context():
            db.engine.dispose()
    finally:
        inst.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
