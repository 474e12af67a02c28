"""A counting SMTP sink (aiosmtpd) run as its own process: accepts every message, keeps nothing.

    python bench/sink.py --port 2525

Prints one line when listening (``listening 127.0.0.1:2525``), then, at most every 20 ms and
only when something changed, ``count=N bytes=B first=T last=T`` where T are the wall-clock
times (time.time()) of the first and the latest acceptance, taken inside the sink so the
reader's delay does not blur them. Stops on SIGTERM or SIGINT.
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys
import time

from aiosmtpd.smtp import SMTP, Envelope, Session


class Counter:
    """The SMTP handler: count each accepted message and remember when."""

    def __init__(self) -> None:
        self.count = 0
        self.bytes = 0
        self.first = 0.0
        self.last = 0.0

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:  # noqa: N802
        """Accept the message: count it, note the time, drop the content."""
        now = time.time()
        if not self.count:
            self.first = now
        self.count += 1
        self.bytes += len(envelope.content or b"")
        self.last = now
        return "250 OK"

    def line(self) -> str:
        """Return the status line the parent process reads."""
        return f"count={self.count} bytes={self.bytes} first={self.first:.6f} last={self.last:.6f}"


async def serve(host: str, port: int) -> None:
    """Listen until a signal arrives, reporting the counter whenever it changes."""
    counter = Counter()
    loop = asyncio.get_running_loop()
    server = await loop.create_server(
        lambda: SMTP(counter, hostname="sink", data_size_limit=0, enable_SMTPUTF8=True),
        host,
        port,
    )
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    print(f"listening {host}:{port}", flush=True)
    reported = ""
    while not stop.is_set():
        line = counter.line()
        if line != reported:
            print(line, flush=True)
            reported = line
        try:
            await asyncio.wait_for(stop.wait(), 0.02)
        except TimeoutError:
            pass
    print(counter.line(), flush=True)
    server.close()


def main(argv: list[str] | None = None) -> int:
    """Parse arguments and run the sink."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args(argv)
    asyncio.run(serve(args.host, args.port))
    return 0


if __name__ == "__main__":
    sys.exit(main())
