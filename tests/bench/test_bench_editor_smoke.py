"""bench/bench_editor.py runs end to end at a tiny size and prints a figure per page."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.slow


def test_editor_bench_prints_p95_for_each_page():
    args = [sys.executable, str(REPO / "bench" / "bench_editor.py"), "--smoke"]
    if os.environ.get("TEST_DATABASE_URL", "").startswith("postgres"):
        args += ["--database-url", os.environ["TEST_DATABASE_URL"]]
    done = subprocess.run(args, capture_output=True, text=True, timeout=180, cwd=REPO)
    assert done.returncode == 0, done.stdout + done.stderr
    out = done.stdout
    assert re.search(r"^(sqlite|postgresql): generated 2000 subscribers", out, re.M), out
    for page in ("subscribers, first page", "search, no match", "stats"):
        match = re.search(rf"^{re.escape(page)}\s+([\d.]+)\s+([\d.]+)$", out, re.M)
        assert match and float(match.group(2)) > 0, out
