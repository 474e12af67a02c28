"""Fixtures of the back catalogue: a real HTTP server that serves feeds and exports."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from typing import Any

import pytest

from newsletter.extensions import db
from tests.helpers import truncate_all
from tests.helpers.receivers import QuietHTTPServer


@dataclass
class Answer:
    """What the server answers on one path; an ETag or Last-Modified makes it conditional."""

    body: bytes = b""
    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    etag: str = ""
    last_modified: str = ""


class FeedServer:
    """A real HTTP server on 127.0.0.1: set ``routes[path]``; ``requests`` records each GET."""

    def __init__(self) -> None:
        self.routes: dict[str, Answer] = {}
        self.requests: list[tuple[str, dict[str, str], int]] = []
        self.lock = threading.Lock()
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self) -> None:  # noqa: N802 - the stdlib's name
                with server.lock:
                    answer = server.routes.get(self.path.split("?", 1)[0])
                status = 404 if answer is None else answer.status
                headers: dict[str, str] = {}
                body = b"not here"
                if answer is not None:
                    headers = dict(answer.headers)
                    body = answer.body
                    if answer.etag:
                        headers["ETag"] = answer.etag
                    if answer.last_modified:
                        headers["Last-Modified"] = answer.last_modified
                    fresh = (answer.etag and self.headers.get("If-None-Match") == answer.etag) or (
                        answer.last_modified
                        and self.headers.get("If-Modified-Since") == answer.last_modified
                    )
                    if status == 200 and fresh:
                        status, body = 304, b""
                with server.lock:
                    server.requests.append((self.path, dict(self.headers), status))
                self.send_response(status)
                for name, value in headers.items():
                    self.send_header(name, value)
                if "Content-Length" not in headers:
                    self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                if status != 304:
                    try:
                        self.wfile.write(body)
                    except OSError:
                        pass  # the client gave up (a size limit): fine

            def log_message(self, *args: object) -> None:
                pass

        self.server = QuietHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.base = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def url(self, path: str) -> str:
        return self.base + path

    def serve(self, path: str, body: bytes = b"", **answer: Any) -> str:
        """Serve ``body`` (or the answer given) at ``path``; return its URL."""
        with self.lock:
            self.routes[path] = Answer(body, **answer)
        return self.url(path)

    def hits(self, path: str) -> list[tuple[str, dict[str, str], int]]:
        with self.lock:
            return [r for r in self.requests if r[0].split("?", 1)[0] == path]

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def feed_server() -> Iterator[FeedServer]:
    server = FeedServer()
    yield server
    server.close()


@pytest.fixture
def archive_app(make_app: Callable[..., Any]) -> Iterator[Any]:
    """The app allowed to fetch from the test server on 127.0.0.1, on an empty database."""
    app = make_app(FEED_ALLOW_HOSTS="127.0.0.1")
    with app.app_context():
        truncate_all()
        yield app
        db.session.rollback()
