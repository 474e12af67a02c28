"""The bench scripts run end to end at a tiny size and print their figures (no time asserted)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.slow


def run_bench(script: str, *extra: str, database: bool = True) -> str:
    """Run ``bench/<script> --smoke`` as a user would; return its stdout, failing on non-zero."""
    args = [sys.executable, str(REPO / "bench" / script), "--smoke", *extra]
    # On the PostgreSQL run, bench there too (it makes and drops its own database).
    if database and os.environ.get("TEST_DATABASE_URL", "").startswith("postgres"):
        args += ["--database-url", os.environ["TEST_DATABASE_URL"]]
    done = subprocess.run(args, capture_output=True, text=True, timeout=120, cwd=REPO)
    assert done.returncode == 0, f"{script} failed:\n{done.stdout}\n{done.stderr}"
    return done.stdout


def figures(line: str) -> dict[str, str]:
    return dict(kv.split("=", 1) for kv in line.split()[2:])


def test_send_bench_delivers_every_copy_and_prints_its_figures():
    out = run_bench("bench_send.py")
    assert re.search(r"^machine: \d+ CPU", out, re.M)
    lines = [x for x in out.splitlines() if x.startswith("RESULT send ")]
    assert len(lines) == 1, out
    got = figures(lines[0])
    assert got["n"] == "200" and got["workers"] == "1" and got["sink"] == "aiosmtpd"
    assert float(got["rate"]) > 0 and float(got["baseline"]) > 0
    assert float(got["cpu_us"]) > 0 and int(got["rss_kb"]) > 0
    assert float(got["sink_busy"]) > 0 and float(got["raw_sink_busy"]) > 0
    assert "NOTE:" not in out, out  # a NOTE means some recipient was not sent exactly once


def test_subscribe_bench_signs_people_up_and_prints_its_figures():
    out = run_bench("bench_subscribe.py", "--floor")
    lines = [x for x in out.splitlines() if x.startswith("RESULT subscribe ")]
    assert len(lines) == 1, out
    got = {k: float(v) for k, v in figures(lines[0]).items()}
    assert got["rps"] > 0 and got["hello_rps"] > 0 and got["p99_ms"] > 0
    # The sign-up without its database work answered every request as a sign-up does.
    floor = [figures(x) for x in out.splitlines() if x.startswith("RESULT floor ")]
    assert len(floor) == 1 and float(floor[0]["rps"]) > 0, out
    assert floor[0]["bad_status"] == "0", out
    created = re.search(r"^subscribers created: (\d+) \(requests (\d+)\)", out, re.M)
    assert created and int(created.group(1)) >= int(created.group(2)) > 0, out
    # The sign-up storing only the address went through the same view and stored each one.
    bare = [figures(x) for x in out.splitlines() if x.startswith("RESULT subscribe-bare ")]
    assert len(bare) == 1 and float(bare[0]["rps"]) > 0, out
    assert bare[0]["bad_status"] == "0", out
    stored = re.search(r"^addresses stored bare: (\d+) \(requests (\d+)\)", out, re.M)
    assert stored and int(stored.group(1)) >= int(stored.group(2)) > 0, out


def test_raw_spin_bench_burns_the_cpu_it_is_told_to_per_message():
    out = run_bench("raw_spin.py", database=False)
    runs = {
        got["spin_us"]: got
        for got in (figures(x) for x in out.splitlines() if x.startswith("RESULT raw_spin "))
    }
    assert set(runs) == {"0", "200"}, out
    assert float(runs["0"]["rate"]) > 0 and float(runs["200"]["rate"]) > 0
    # The spin is CPU, not wall time: it alone is 200 µs of the sender's CPU per message
    # (compared with the unspun run, smtplib's own share varies by more than a test may bet).
    assert float(runs["200"]["cpu_us"]) >= 200, out


def test_record_floor_bench_records_every_delivery_and_prints_each_statement():
    out = run_bench("record_floor.py")
    kinds = {
        figures(x)["statement"]: figures(x)
        for x in out.splitlines()
        if x.startswith("RESULT record_floor ")
    }
    if os.environ.get("TEST_DATABASE_URL", "").startswith("postgres"):
        statements = {"round_trip", "record", "record_HOT", "outcome_row", "snapshot", "claim"}
        assert set(kinds) == statements, out
        assert all(float(k["backend_us"]) > 0 for k in kinds.values()), out
        # The product's own claims took every copy its snapshot made.
        assert "copies claimed by the last round: 2000 of 2000" in out, out
    else:  # SQLite, in-process: the wall time per commit is the write lock's hold
        assert set(kinds) == {"round_trip", "record"}, out
        assert float(kinds["record"]["wall_us"]) > float(kinds["round_trip"]["wall_us"]), out
    # The worker's own statement moved every claimed delivery to sent.
    assert "deliveries recorded sent by the last round: 2000 of 2000" in out, out
