"""Run one bench against two checkouts in interleaved pairs (BEFORE, AFTER, BEFORE, AFTER, …).

    .venv/bin/python bench/pairs.py --before /tmp/before --after . --pairs 3 \\
        -- bench/bench_subscribe.py --seconds 10

On a shared machine the load moves between runs; pairs taken back to back see about the same
load, so their ratios compare where absolute rates do not. Each run imports the checkout's
own code (PYTHONPATH set to it, absolute) while the bench scripts are this checkout's. Every
``RESULT`` line the bench prints is shown with its pair, its checkout and the load around it.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path

from common import PYTHON


def main(argv: list[str] | None = None) -> int:
    """Alternate the two checkouts, print every run's RESULT lines and the load around it."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--before", type=Path, required=True, help="checkout of the old commit")
    parser.add_argument("--after", type=Path, required=True, help="checkout of the new commit")
    parser.add_argument("--pairs", type=int, default=3)
    parser.add_argument("bench", nargs=argparse.REMAINDER, help="-- script and its arguments")
    args = parser.parse_args(argv)
    bench = [a for a in args.bench if a != "--"]
    if not bench:
        parser.error("name the bench after --")
    for pair in range(1, args.pairs + 1):
        for label, checkout in (("BEFORE", args.before), ("AFTER", args.after)):
            load = Path("/proc/loadavg").read_text().split()[0]
            done = subprocess.run(
                [PYTHON, *bench],
                env={**os.environ, "PYTHONPATH": str(checkout.resolve())},
                capture_output=True,
                text=True,
            )
            results = [x for x in done.stdout.splitlines() if x.startswith("RESULT")]
            if done.returncode or not results:
                print(done.stdout[-2000:], done.stderr[-2000:], file=sys.stderr)
                results = [f"FAILED (exit {done.returncode})"]
            end = Path("/proc/loadavg").read_text().split()[0]
            for line in results:
                print(f"{pair} {label:<6} load {load} → {end}  {line}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
