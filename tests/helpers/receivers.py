"""Test HTTP servers: one that stays quiet when a client hangs up, and a webhook receiver that
misbehaves on purpose (it answers a byte at a time)."""

from __future__ import annotations

import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class QuietHTTPServer(ThreadingHTTPServer):
    """A threaded HTTP server that treats a client's hang-up as the normal end it is.

    A client that closes without reading a whole answer (a refused redirect, an error page it
    does not need) resets the connection; the stdlib prints that as a traceback on whatever
    ``sys.stderr`` is at the moment, which may be a CLI test's captured error output.
    """

    daemon_threads = True

    def handle_error(self, request: object, client_address: object) -> None:
        if isinstance(sys.exc_info()[1], ConnectionError):
            return
        super().handle_error(request, client_address)  # type: ignore[arg-type]


class Dripper:
    """A receiver that reads each POST, then answers one byte every ``every`` seconds.

    ``began`` maps each delivery id to when its request arrived; ``cut_off_at`` says when the
    sender gave up on an answer.
    """

    def __init__(self, every: float = 5.0) -> None:
        self.got_request = threading.Event()
        self.began: dict[int, float] = {}
        self.stop = threading.Event()
        self.cut_off_at: float | None = None
        dripper = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - the stdlib's name
                self.rfile.read(int(self.headers["Content-Length"]))
                delivery = self.headers.get("X-Newsletter-Delivery", "")
                if delivery.isdigit():
                    dripper.began[int(delivery)] = time.monotonic()
                dripper.got_request.set()
                answer = b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n" + b"x" * 100
                try:
                    for byte in answer:
                        self.wfile.write(bytes([byte]))
                        self.wfile.flush()
                        if dripper.stop.wait(every):
                            return
                except OSError:
                    dripper.cut_off_at = time.monotonic()

            def log_message(self, *args: object) -> None:
                pass

        self.server = QuietHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.stop.set()
        self.server.shutdown()
        self.server.server_close()
