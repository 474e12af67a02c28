"""bench/bench_bulk.py runs end to end at a tiny size and prints a figure per action."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.slow


def test_bulk_bench_prints_time_and_memory_for_each_action():
    args = [sys.executable, str(REPO / "bench" / "bench_bulk.py"), "--smoke"]
    if os.environ.get("TEST_DATABASE_URL", "").startswith("postgres"):
        args += ["--database-url", os.environ["TEST_DATABASE_URL"]]
    done = subprocess.run(args, capture_output=True, text=True, timeout=180, cwd=REPO)
    assert done.returncode == 0, done.stdout + done.stderr
    out = done.stdout
    assert re.search(r"^(sqlite|postgresql): generated 3000 subscribers", out, re.M), out
    for action, rows in (
        ("baseline: the list's first page", 51),
        ("tag a third (one statement)", 1000),
        ("untag a third (one statement)", 1000),
        ("export a third (streamed)", 1000),
        ("unsubscribe 1 in 100 (job, chunks)", 30),
        ("erase 1 in 100 (job, chunks)", 30),
    ):
        match = re.search(rf"^{re.escape(action)}\s+(\d+)\s+([\d.]+)\s+([\d.]+)$", out, re.M)
        assert match and int(match.group(1)) == rows, out
