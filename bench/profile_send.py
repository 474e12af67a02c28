"""Profile the delivery engine in-process: every batch of one issue into a counting sink.

    .venv/bin/python bench/profile_send.py --n 5000 [--sink smtp-sink] [--profile] \\
        [--database-url postgresql://…]

Prints msg/s and CPU µs per message; with --profile, cProfile's top functions as well.
"""

from __future__ import annotations

import argparse
import cProfile
import pstats
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_send import issue_body  # noqa: E402
from common import SINK_KINDS, Instance, Sink, insert_confirmed  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    """Queue one issue to N subscribers and run its batches here, optionally profiled."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=5000)
    parser.add_argument("--sink", choices=SINK_KINDS, default="aiosmtpd")
    parser.add_argument("--database-url", help="default: SQLite in a temporary folder")
    parser.add_argument("--profile", action="store_true")
    parser.add_argument("--sort", default="cumulative", help="cProfile sort key (tottime...)")
    args = parser.parse_args(argv)
    sink = Sink(args.sink)
    inst = Instance(args.database_url, SMTP_HOST="127.0.0.1", SMTP_PORT=str(sink.port))
    try:
        app = inst.app(SMTP_HOST="127.0.0.1", SMTP_PORT=str(sink.port))
        insert_confirmed(app, args.n)
        body = inst.dir / "tip.md"
        body.write_text(issue_body())
        made = inst.run("issues", "create", "--subject", "Profiled", "--body-file", str(body))
        issue_id = int(made.stdout.split()[-1])
        inst.run("issues", "send", str(issue_id))

        from newsletter.delivery.lifecycle import batches_with_work
        from newsletter.extensions import db
        from newsletter.tasks import jobs

        with app.app_context():
            batches = batches_with_work(db.session, issue_id)
            db.session.remove()
        profiler = cProfile.Profile()
        started, cpu0 = time.perf_counter(), time.process_time()
        if args.profile:
            profiler.enable()
        for batch in batches:
            with app.app_context():
                jobs.deliver_batch(issue_id, batch)
                db.session.remove()
        profiler.disable()
        wall, cpu = time.perf_counter() - started, time.process_time() - cpu0
        sink.wait_for(args.n)
        print(f"n={args.n} {args.n / wall:.0f} msg/s, CPU {cpu / args.n * 1e6:.0f} µs/msg")
        if args.profile:
            pstats.Stats(profiler).sort_stats(args.sort).print_stats(40)
        with app.app_context():
            db.engine.dispose()
    finally:
        sink.stop()
        inst.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
