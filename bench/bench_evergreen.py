"""One evergreen tick at 100,000 readers in the sequence, against a plain send of as many copies.

    python bench/bench_evergreen.py                         # 100,000 readers, 500 tips, SQLite
    python bench/bench_evergreen.py --n 10000 --tips 50

A tick hands the next tip to at most TICK_READERS (500) due readers, picked by their indexed
due time: its cost must not grow with the list. Printed side by side, median of --runs:

* the tick (``delivery.evergreen.step`` and its commit) with N readers due, every one in the
  sequence, and --tips archived tips: its time and its peak Python memory (tracemalloc);
* the same tick with --small readers, to show it does not grow with the list;
* a plain send's plan of the same number of copies (``queue_issue`` to that many confirmed
  readers, the snapshot a live send makes), its time and memory.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
import tracemalloc
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import sqlalchemy as sa

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from newsletter.app import create_app  # noqa: E402
from newsletter.delivery import evergreen  # noqa: E402
from newsletter.delivery.plan import queue_issue  # noqa: E402
from newsletter.extensions import db  # noqa: E402
from newsletter.models import Issue, IssueStatus, Subscriber, SubscriberStatus, utcnow  # noqa: E402


def _app(url: str, tmp: Path):  # type: ignore[no-untyped-def]
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
    return app


def _readers(count: int, *, sequence: bool, chunk: int = 20_000) -> None:
    now = utcnow()
    for start in range(0, count, chunk):
        db.session.execute(
            sa.insert(Subscriber),
            [
                {
                    "email": f"reader{i}@example.com",
                    "name": "",
                    "status": SubscriberStatus.CONFIRMED,
                    "confirmed_at": now,
                    "evergreen": sequence,
                    # Spread over the last hour: every reader is due.
                    "evergreen_due_at": now - timedelta(seconds=i % 3600) if sequence else None,
                }
                for i in range(start, min(count, start + chunk))
            ],
        )
        db.session.commit()


def _tips(count: int) -> None:
    first = datetime(2015, 1, 1, 9, tzinfo=UTC)
    db.session.execute(
        sa.insert(Issue),
        [
            {
                "subject": f"Tip {n}",
                "body_md": f"Body of tip {n}.",
                "slug": f"tip-{n}",
                "status": IssueStatus.ARCHIVED,
                "sent_at": first + timedelta(weeks=n),
            }
            for n in range(1, count + 1)
        ],
    )
    db.session.commit()


def _measure(fn: Callable[[], int], runs: int) -> tuple[float, float, int]:
    """Return (median ms, peak MiB, copies of the last run) over ``runs`` calls.

    One call first, not counted: it fills the statement caches both sides share. The times
    are taken without tracemalloc (it slows Python down); one more call measures the memory.
    """
    fn()
    times, copies = [], 0
    for _ in range(runs):
        began = time.perf_counter()
        copies = fn()
        times.append((time.perf_counter() - began) * 1000)
    tracemalloc.start()
    fn()
    peak = tracemalloc.get_traced_memory()[1] / 2**20
    tracemalloc.stop()
    return statistics.median(times), peak, copies


def _tick_world(
    url: str, tmp: Path, readers: int, tips: int, runs: int
) -> tuple[float, float, int]:
    app = _app(url, tmp)
    with app.app_context():
        began = time.perf_counter()
        _tips(tips)
        _readers(readers, sequence=True)
        print(
            f"  {readers} readers and {tips} tips inserted in {time.perf_counter() - began:.1f} s"
        )

        def tick() -> int:
            done = evergreen.step(db.session(), utcnow(), 604800)
            db.session.commit()
            return sum(done.queued.values())

        found = _measure(tick, runs)
        db.session.remove()
    return found


def _send_world(url: str, tmp: Path, copies: int, runs: int) -> tuple[float, float, int]:
    app = _app(url, tmp)
    with app.app_context():
        _readers(copies, sequence=False)

        def send() -> int:
            issue = Issue(subject="A live tip", body_md="Body.", slug=f"live-{time.time_ns()}")
            db.session.add(issue)
            db.session.commit()
            result = queue_issue(db.session(), issue.id, utcnow(), 500)
            db.session.commit()
            return result.audience

        found = _measure(send, runs)
        db.session.remove()
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, default=100_000, help="readers in the sequence")
    parser.add_argument("--small", type=int, default=5_000, help="the smaller list, to compare")
    parser.add_argument("--tips", type=int, default=500, help="archived tips")
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    if min(args.n, args.small) < (args.runs + 2) * evergreen.TICK_READERS:
        parser.error("each list needs (runs + 2) x 500 readers: every tick takes 500 of them")
    with tempfile.TemporaryDirectory() as raw:
        tmp = Path(raw)

        def url(name: str) -> str:
            return f"sqlite:///{tmp / name}.sqlite3"  # one database per world, in a temp dir

        big = _tick_world(url("big"), tmp, args.n, args.tips, args.runs)
        small = _tick_world(url("small"), tmp, args.small, args.tips, args.runs)
        send = _send_world(url("send"), tmp, big[2], args.runs)
    print()
    print(f"{'':44} {'median ms':>10} {'peak MiB':>9} {'copies':>7}")
    rows = [
        (f"evergreen tick, {args.n} readers, {args.tips} tips", big),
        (f"evergreen tick, {args.small} readers, {args.tips} tips", small),
        (f"plain send's plan of {big[2]} copies", send),
    ]
    for name, (ms, mib, copies) in rows:
        print(f"{name:44} {ms:10.1f} {mib:9.2f} {copies:7d}")


if __name__ == "__main__":
    main()
