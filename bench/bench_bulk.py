"""Time and peak memory of the list's tag filter and bulk actions at N subscribers, against the
plain list query on the same database.

    python bench/bench_bulk.py --n 1000000                       # SQLite in a temp dir
    python bench/bench_bulk.py --n 1000000 --database-url postgresql://postgres@127.0.0.1/bench

A third of the list carries the tag "group 3", one in a hundred "group 100". Each line is one
action over the whole match (not one page): milliseconds, and how much the process's peak
memory (RSS) grew while it ran. Memory that stays flat as N grows is the point; time grows
with the rows touched.
"""

from __future__ import annotations

import argparse
import io
import os
import resource
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import sqlalchemy as sa

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from gen_subscribers import generate  # noqa: E402

from newsletter.app import create_app  # noqa: E402
from newsletter.extensions import db  # noqa: E402
from newsletter.subscribers import bulk, bulk_jobs, search  # noqa: E402
from newsletter.subscribers.bulk_jobs import BulkAction  # noqa: E402
from newsletter.subscribers.export import csv_lines  # noqa: E402
from newsletter.subscribers.tags import ensure_tags, tag_counts  # noqa: E402


def measure(fn: Callable[[], object]) -> tuple[float, float, object]:
    """Run ``fn`` once; return milliseconds, how much the process's peak RSS grew (MB), and
    its result. An action that loaded the list would raise the peak by the list's size."""
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    began = time.perf_counter()
    result = fn()
    elapsed = (time.perf_counter() - began) * 1000
    grew = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before
    return elapsed, grew / 1024, result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--n", type=int, default=100_000)
    parser.add_argument("--database-url", default="")
    parser.add_argument("--smoke", action="store_true", help="tiny size, for CI")
    args = parser.parse_args()
    if args.smoke:
        args.n = 3000
    tmp = Path(tempfile.mkdtemp(prefix="bench-bulk-"))
    if args.database_url.startswith("postgres"):
        server = sa.engine.make_url(args.database_url)
        name = f"bench_bulk_{os.getpid()}"
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
    """Generate the list and its tags, then time each action."""
    app = create_app(
        {
            "DATABASE_URL": url,
            "INSTANCE_PATH": str(tmp),
            "NEWSLETTER_ENV": "testing",
            "SECRET_KEY": "bench-secret-key-bench-secret-key-0123456789",
        }
    )
    from flask_migrate import upgrade

    with app.app_context():
        upgrade(directory=app.config["MIGRATIONS_DIR"])
        began = time.perf_counter()
        generate(db.engine, args.n)
        ids = ensure_tags(db.session(), ["group 3", "group 100"])
        db.session.commit()
        with db.engine.begin() as conn:
            for key, every in (("group 3", 3), ("group 100", 100)):
                conn.execute(
                    sa.text(
                        "INSERT INTO subscriber_tag (subscriber_id, tag_id) "
                        "SELECT id, :tag FROM subscriber WHERE id % :every = :rest"
                    ),
                    # Remainder 7: readers the generator made confirmed, not gone already.
                    {"tag": ids[key], "every": every, "rest": 7 % every},
                )
        print(
            f"{db.engine.dialect.name}: generated {args.n} subscribers and their tags in "
            f"{time.perf_counter() - began:.1f} s"
        )
        session = db.session()
        third = bulk.Filter(tag_id=ids["group 3"])
        small = bulk.Filter(tag_id=ids["group 100"])

        def plain_list() -> object:
            return session.execute(
                sa.select(search.Subscriber).order_by(search.Subscriber.id.desc()).limit(51)
            ).all()

        def scan() -> object:
            return session.scalar(sa.select(sa.func.count()).select_from(search.Subscriber))

        def export(filt: bulk.Filter) -> Callable[[], object]:
            def go() -> object:
                sink = io.StringIO()
                n = 0
                for line in csv_lines(tag=filt.tag_id):
                    n += 1
                    if sink.tell() > 1_000_000:
                        sink.seek(0)
                    sink.write(line)
                return n - 1

            return go

        def committed(fn: Callable[[], object]) -> Callable[[], object]:
            def go() -> object:
                result = fn()
                session.commit()
                return result

            return go

        def bulk_job(action: BulkAction, filt: bulk.Filter) -> Callable[[], object]:
            """What a worker does with an editor's bulk action: a chunk per transaction."""

            def go() -> object:
                typed = str(bulk.count_matching(session, filt))
                job = bulk_jobs.start(session, action, filt, by="bench", typed=typed)
                session.commit()
                bulk_jobs.run(session, job.id)
                return session.get(bulk_jobs.BulkJob, job.id).changed

            return go

        cases: list[tuple[str, Callable[[], object]]] = [
            ("baseline: the list's first page", plain_list),
            ("baseline: count every row", scan),
            (
                "list page filtered by a tag",
                lambda: search.page(session, "", "", tag=ids["group 3"]),
            ),
            ("counts per tag", lambda: tag_counts(session)),
            ("count the match (a third)", lambda: bulk.count_matching(session, third)),
            ("tag a third (one statement)", committed(lambda: bulk.tag_all(session, third, "x"))),
            (
                "untag a third (one statement)",
                committed(lambda: bulk.untag_all(session, third, ensure_tags(session, ["x"])["x"])),
            ),
            ("export a third (streamed)", export(third)),
            ("unsubscribe 1 in 100 (job, chunks)", bulk_job(BulkAction.UNSUBSCRIBE, small)),
            ("erase 1 in 100 (job, chunks)", bulk_job(BulkAction.ERASE, small)),
        ]
        print(f"{'action':40} {'rows':>8} {'ms':>10} {'+peak MB':>8}")
        for name, fn in cases:
            ms, peak, result = measure(fn)
            rows = (
                result
                if isinstance(result, int)
                else (len(result) if isinstance(result, list) else "")
            )
            session.rollback()
            print(f"{name:40} {rows!s:>8} {ms:10.1f} {peak:8.2f}")


if __name__ == "__main__":
    main()
