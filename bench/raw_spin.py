"""Raw smtplib with the product's CPU per copy: how fast could a send be that costs that much?

    .venv/bin/python bench/raw_spin.py [--sink aiosmtpd] [--connections 1,2] [--n 10000]
        [--spin-us 0,200,400]

The raw baseline of bench_send.py (pre-built copies of the issue, one process per
connection), run again with each sender burning ``--spin-us`` of its own CPU before each
message: the worker's CPU per copy beyond raw's (and the database's, which on a small box
competes for the same cores). If raw with the product's extra CPU sends about what the product
sends, the gap to raw is that CPU, not waiting; if it sends much more, the product waits
somewhere. Prints, per run, msg/s, the ratio to the unspun run, the sender CPU per message,
how busy the machine and the sink were.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_send import write_issue_copies  # noqa: E402
from common import SINK_KINDS, Sink, print_machine, raw_baseline  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    """Run the raw baseline at each spin for each sink and connection count."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sink", default="aiosmtpd", choices=SINK_KINDS)
    parser.add_argument("--connections", default="1,2")
    parser.add_argument("--n", type=int, default=10000)
    parser.add_argument("--spin-us", default="0,200,400")
    parser.add_argument("--smoke", action="store_true", help="200 messages, 1 connection (CI)")
    args = parser.parse_args(argv)
    if args.smoke:
        args.n, args.connections, args.spin_us = 200, "1", "0,200"
    conns = [int(c) for c in args.connections.split(",")]
    spins = [float(s) for s in args.spin_us.split(",")]
    print_machine()
    mail_dir = Path(tempfile.mkdtemp(prefix="newsletter-bench-mail-"))
    sink = Sink(args.sink)
    try:
        write_issue_copies(mail_dir)
        print(
            f"{'sink':<10}{'conns':>6}{'spin µs':>9}{'msg/s':>8}{'ratio':>7}{'CPU µs':>8}"
            f"{'box':>6}{'sink':>6}"
        )
        for c in conns:
            plain = 0.0
            for spin in spins:
                r = raw_baseline(sink, c, args.n, mail_dir=mail_dir, spin_us=spin)
                plain = plain or r.rate
                print(
                    f"{args.sink:<10}{c:>6}{spin:>9.0f}{r.rate:>8.0f}{r.rate / plain:>7.2f}"
                    f"{r.cpu_us:>8.0f}{r.box_busy:>6.2f}{r.sink_busy:>6.2f}",
                    flush=True,
                )
                print(
                    f"RESULT raw_spin sink={args.sink} connections={c} spin_us={spin:.0f} "
                    f"rate={r.rate:.0f} ratio={r.rate / plain:.3f} cpu_us={r.cpu_us:.0f} "
                    f"box_busy={r.box_busy:.2f} sink_busy={r.sink_busy:.2f}",
                    flush=True,
                )
    finally:
        sink.stop()
        shutil.rmtree(mail_dir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
