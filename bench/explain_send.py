"""Print the SQL and the PostgreSQL plan of every statement of a send's snapshot and first chunk.

    .venv/bin/python bench/explain_send.py --database-url postgresql://postgres@127.0.0.1/NAME
        [--n 10000] [--statistics none|analyzed] [--skip-refresh]

A database ``<NAME>_bench_<random>`` is created, migrated and filled with N readers in one
statement (autovacuum off for the reader and delivery tables, so nothing brings statistics
midway). One issue is queued and one chunk of batch 7 claimed, re-checked and recorded;
each statement runs under EXPLAIN ANALYZE just before it runs for real (rolled back), and
is printed with its time, its plan, and the rows every scan of the two big tables read.
``--statistics analyzed`` runs ANALYZE on both tables after the snapshot; ``none`` (default)
leaves them as the product leaves them. ``--skip-refresh`` also skips the snapshot's own
ANALYZE (where the checkout has one), to see the statements' plans with nothing at all.
Run it from checkouts of two commits (PYTHONPATH) to compare their statements.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import Instance, print_machine  # noqa: E402

TABLES = ("subscriber", "delivery")


def _nodes(node: dict[str, Any], depth: int = 0) -> Any:
    yield depth, node
    for child in node.get("Plans", []):
        yield from _nodes(child, depth + 1)


def explain(cursor: Any, statement: str, parameters: Any, begin: str, out: list[Any]) -> None:
    """EXPLAIN ANALYZE ``statement`` inside ``begin`` and roll it back; keep the plan."""
    if not statement.lstrip().upper().startswith(("SELECT", "INSERT", "UPDATE", "DELETE")):
        return
    cursor.execute(begin)
    cursor.execute("EXPLAIN (ANALYZE, FORMAT JSON) " + statement, parameters)
    out.append((" ".join(statement.split()), cursor.fetchone()[0][0]))
    cursor.execute("ROLLBACK" if begin == "BEGIN" else "ROLLBACK TO SAVEPOINT explain_send")


def show(label: str, plans: list[Any]) -> None:
    """Print each statement: its SQL, time, plan tree, and rows read from the big tables."""
    print(f"\n## {label}")
    for sql, found in plans:
        read = 0
        lines = []
        for depth, node in _nodes(found["Plan"]):
            relation = node.get("Relation Name") or node.get("Index Name", "")
            rows = node.get("Actual Rows", 0) + node.get("Rows Removed by Filter", 0)
            loops = node.get("Actual Loops", 1)
            if any(t in relation for t in TABLES):
                read += rows * loops
            where = " ".join(x for x in (node.get("Relation Name"), node.get("Index Name")) if x)
            lines.append(
                f"    {'  ' * depth}{node['Node Type']} {where} "
                f"(estimated {node['Plan Rows']}, actual {node.get('Actual Rows')} × {loops})"
            )
        print(f"\n{sql}\n  {found['Execution Time']:.2f} ms, {read} rows read from {TABLES}")
        print("\n".join(lines))


def main(argv: list[str] | None = None) -> int:
    """Fill, queue, claim, re-check and record once, printing every statement's plan."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--database-url", required=True, help="a PostgreSQL server")
    parser.add_argument("--n", type=int, default=10_000)
    parser.add_argument("--statistics", choices=("none", "analyzed"), default="none")
    parser.add_argument("--skip-refresh", action="store_true")
    args = parser.parse_args(argv)
    print_machine()
    inst = Instance(args.database_url)
    try:
        import sqlalchemy as sa

        from newsletter.delivery import claims, plan
        from newsletter.extensions import db
        from newsletter.models import Issue, IssueStatus, utcnow

        if args.skip_refresh and hasattr(plan, "refresh_statistics"):
            plan.refresh_statistics = lambda *_a, **_k: None  # type: ignore[attr-defined]
        app = inst.app()
        with app.app_context():
            session = db.session()
            for table in TABLES:
                session.execute(sa.text(f"ALTER TABLE {table} SET (autovacuum_enabled = false)"))
            session.execute(
                sa.text(f"""
                INSERT INTO subscriber (email, name, status, version, created_at, updated_at,
                                        confirmed_at, source, confirm_sent_count)
                SELECT 'reader' || g || '@example.com', 'Reader', CASE WHEN g % 20 = 0
                       THEN 'unsubscribed' ELSE 'confirmed' END, 1, now(), now(), now(),
                       'import', 0
                FROM generate_series(1, {args.n}) AS g
            """)
            )
            issue = Issue(slug="explained", subject="Tip", body_md="Body")
            issue.status = IssueStatus.READY
            session.add(issue)
            session.commit()
            plans: list[Any] = []

            def hook(_c: Any, cursor: Any, statement: str, parameters: Any, *_: Any) -> None:
                explain(cursor, statement, parameters, "SAVEPOINT explain_send", plans)

            sa.event.listen(db.engine, "before_cursor_execute", hook)
            plan.queue_issue(session, issue.id, utcnow(), 500)
            session.commit()
            show("snapshot (queue_issue)", plans)
            plans.clear()
            if args.statistics == "analyzed":
                sa.event.remove(db.engine, "before_cursor_execute", hook)
                for table in TABLES:
                    session.execute(sa.text(f"ANALYZE {table}"))
                session.commit()
                sa.event.listen(db.engine, "before_cursor_execute", hook)
            stats = session.scalars(
                sa.text("SELECT DISTINCT tablename FROM pg_stats WHERE tablename IN :t").bindparams(
                    sa.bindparam("t", expanding=True)
                ),
                {"t": list(TABLES)},
            ).all()
            print(f"\ntables with planner statistics now: {sorted(stats) or 'none'}")
            plans.clear()
            now = utcnow()
            rows = claims.claim(session, issue.id, 7, "bench:1", now, 60)
            session.commit()
            sa.event.remove(db.engine, "before_cursor_execute", hook)
            show(f"claim of a chunk of batch 7 ({len(rows)} rows)", plans)
            plans.clear()
            recorder = claims.Recorder(session)
            raw = recorder._cur

            class Explaining:
                def execute(self, statement: str, parameters: Any = None) -> Any:
                    explain(raw, statement, parameters, "BEGIN", plans)
                    return raw.execute(statement, parameters)

                def __getattr__(self, name: str) -> Any:
                    return getattr(raw, name)

            recorder._cur = Explaining()  # type: ignore[assignment]
            recorder.no_longer_confirmed(issue.id, 7, "bench:1")
            recorder.sent(rows[0].delivery_id, "bench:1", now)
            recorder.close()
            show("the unsubscribe re-check and one recorded acceptance", plans)
            db.session.remove()
            db.engine.dispose()
    finally:
        inst.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
