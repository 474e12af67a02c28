"""p95 latency of the editor's subscribers page, a search and the stats page at N subscribers.

    python bench/bench_editor.py --n 1000000                       # SQLite in a temp dir
    python bench/bench_editor.py --n 1000000 --database-url postgresql://postgres@127.0.0.1/bench

Prints, per page, p50/p95 over --runs requests through the real app (WSGI test client, logged
in), next to the raw baseline of a trivial query on the same database.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import sqlalchemy as sa

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from gen_subscribers import daily_stats, generate  # noqa: E402

from newsletter.app import create_app
from newsletter.auth import passwords, sessions  # noqa: E402
from newsletter.extensions import db  # noqa: E402
from newsletter.models import Editor  # noqa: E402


def timed(fn, runs: int) -> tuple[float, float]:
    samples = []
    for _ in range(runs):
        t = time.perf_counter()
        fn()
        samples.append((time.perf_counter() - t) * 1000)
    samples.sort()
    return statistics.median(samples), samples[max(0, int(len(samples) * 0.95) - 1)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--n", type=int, default=20_000)
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--database-url", default="")
    parser.add_argument("--redis-url", default="")
    parser.add_argument("--smoke", action="store_true", help="tiny size, for CI")
    args = parser.parse_args()
    if args.smoke:
        args.n, args.runs = 2000, 3
    tmp = Path(tempfile.mkdtemp(prefix="bench-editor-"))
    if args.database_url.startswith("postgres"):
        # Bench in a database of our own on that server, dropped at the end.
        server = sa.engine.make_url(args.database_url)
        name = f"bench_editor_{os.getpid()}"
        admin = sa.create_engine(server, isolation_level="AUTOCOMMIT")
        with admin.connect() as conn:
            conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
        try:
            run(args, server.set(database=name).render_as_string(hide_password=False), tmp)
        finally:
            with admin.connect() as conn:
                conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
            admin.dispose()
    else:
        run(args, args.database_url or f"sqlite:///{tmp / 'bench.sqlite3'}", tmp)


def run(args: argparse.Namespace, url: str, tmp: Path) -> None:
    """Generate the rows, then time each page."""
    config = {
        "DATABASE_URL": url,
        "INSTANCE_PATH": str(tmp),
        "NEWSLETTER_ENV": "testing",
        "SECRET_KEY": "bench-secret-key-bench-secret-key-0123456789",
    }
    if args.redis_url:
        config["REDIS_URL"] = args.redis_url
    app = create_app(config)
    from flask_migrate import upgrade

    with app.app_context():
        upgrade(directory=app.config["MIGRATIONS_DIR"])
        began = time.perf_counter()
        generate(db.engine, args.n)
        daily_stats(db.engine)
        print(
            f"{db.engine.dialect.name}: generated {args.n} subscribers in "
            f"{time.perf_counter() - began:.1f} s"
        )
        editor = Editor(email="bench@example.org", password_hash=passwords.hash_password("x" * 12))
        db.session.add(editor)
        db.session.commit()
        client = app.test_client()
        with client.session_transaction() as s:
            s["editor_id"] = editor.id
            s["editor_stamp"] = sessions._stamp(editor)
            s["editor_since"] = s["editor_seen"] = int(time.time())
        # SQLite opens every transaction with BEGIN IMMEDIATE: hold none while measuring.
        db.session.remove()
        middle = args.n // 2

        def get(path: str):
            def call() -> None:
                response = client.get(path)
                assert response.status_code == 200, (path, response.status_code)

            return call

        def baseline() -> None:
            with db.engine.connect() as conn:
                conn.execute(sa.text("SELECT 1")).scalar()

        cases = [
            ("raw baseline: SELECT 1", baseline),
            ("subscribers, first page", get("/editor/subscribers")),
            ("subscribers, a page deep in the list", get(f"/editor/subscribers?after={middle}")),
            ("subscribers, status=pending", get("/editor/subscribers?status=pending")),
            ("search, common term 'reader1'", get("/editor/subscribers?q=reader1")),
            (
                f"search, one person 'reader{middle}@'",
                get(f"/editor/subscribers?q=reader{middle}@"),
            ),
            ("search, no match", get("/editor/subscribers?q=nobody-here")),
            ("search, common term + status", get("/editor/subscribers?q=reader2&status=bounced")),
            (
                "search, next page of a far term",
                get(f"/editor/subscribers?q=reader1&after={middle}"),
            ),
            ("person page", get(f"/editor/subscribers/{middle}")),
            ("stats", get("/editor/stats")),
        ]
        print(f"{'page':45} {'p50 ms':>8} {'p95 ms':>8}")
        for name, fn in cases:
            fn()  # warm up
            p50, p95 = timed(fn, args.runs)
            print(f"{name:45} {p50:8.1f} {p95:8.1f}")
        from newsletter.subscribers import search

        def counts() -> None:
            search.status_counts(db.session)
            db.session.remove()

        # Kept by triggers, read on every page view: no cache, no scan.
        p50, p95 = timed(counts, args.runs)
        print(f"{'counts per status (every view, no cache)':45} {p50:8.1f} {p95:8.1f}")


if __name__ == "__main__":
    main()
