"""Shared fixtures for browser tests: a live server with a job runner, and a headless Chromium.

Use them from any test file with ``from browser import live_server, page  # noqa: F401``.
"""

from __future__ import annotations

import os
import threading
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from playwright.sync_api import sync_playwright
from rq.serializers import JSONSerializer
from rq.timeouts import TimerDeathPenalty
from werkzeug.serving import make_server

from newsletter.extensions import db, get_redis
from newsletter.tasks.queues import ALL_QUEUES
from newsletter.tasks.worker import AppWorker
from tests.helpers import free_port, truncate_all

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
    "--disable-sync",
]


class ThreadWorker(AppWorker):
    """An RQ worker that can run outside the main thread: no signal handlers, timer timeouts."""

    death_penalty_class = TimerDeathPenalty

    def _install_signal_handlers(self) -> None:
        pass


@dataclass
class LiveServer:
    """The app served over real HTTP on ``url``; queued jobs run in the background."""

    app: Any
    url: str
    port: int
    errors: list[BaseException] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)

    def drain(self) -> int:
        """Run every queued job now, in the calling thread; return how many ran."""
        worker = ThreadWorker(
            list(ALL_QUEUES),
            connection=get_redis(self.app),
            serializer=JSONSerializer,
            name=f"live-{uuid.uuid4().hex[:12]}",
        )
        worker.app = self.app
        worker.work(burst=True, with_scheduler=False)
        return worker.jobs_done

    def _run_jobs_forever(self) -> None:
        while not self._stop.is_set():
            try:
                self.drain()
            except Exception as exc:  # keep serving; the test sees it in .errors
                self.errors.append(exc)
            self._stop.wait(0.2)


@pytest.fixture
def live_server(make_app: Callable[..., Any]) -> Iterator[LiveServer]:
    """Serve a fresh app (empty database and Redis) on a free port, BASE_URL pointing at it."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    app = make_app(BASE_URL=url)
    with app.app_context():
        truncate_all()
        db.session.remove()
    server = make_server("127.0.0.1", port, app, threaded=True)
    live = LiveServer(app=app, url=url, port=port)
    serving = threading.Thread(target=server.serve_forever, name="live-server", daemon=True)
    jobs = threading.Thread(target=live._run_jobs_forever, name="live-jobs", daemon=True)
    serving.start()
    jobs.start()
    try:
        yield live
    finally:
        live._stop.set()
        server.shutdown()
        serving.join(10)
        jobs.join(30)
        server.server_close()


def _shared_browser(config: pytest.Config) -> Any:
    """Start Chromium once per test session (on first use) and close it at the end.

    Cached on the pytest config rather than a session fixture, so importing ``page`` alone is
    enough for a test file.
    """
    browser = getattr(config, "_newsletter_browser", None)
    if browser is None:
        if not os.path.exists(CHROMIUM):
            # A developer's box may lack it (apt-get install chromium); CI installs it, so
            # there a missing browser is a failure, never a silent skip.
            if os.environ.get("CI") == "true":
                pytest.fail(f"{CHROMIUM} is missing: .ci/run should have installed chromium")
            pytest.skip(f"{CHROMIUM} is not installed (apt-get install chromium)")

        pw = sync_playwright().start()
        browser = pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        config._newsletter_browser = browser  # type: ignore[attr-defined]

        def close() -> None:
            browser.close()
            pw.stop()

        config.add_cleanup(close)
    return browser


def _fresh_tab(config: pytest.Config) -> Iterator[Any]:
    context = _shared_browser(config).new_context()
    tab = context.new_page()
    tab.set_default_timeout(15_000)
    yield tab
    context.close()


@pytest.fixture
def page(request: pytest.FixtureRequest) -> Iterator[Any]:
    """A fresh browser tab (own cookies) in headless Chromium."""
    yield from _fresh_tab(request.config)


@pytest.fixture
def other_page(request: pytest.FixtureRequest) -> Iterator[Any]:
    """A second browser with cookies of its own: the reader's phone, or a mail scanner."""
    yield from _fresh_tab(request.config)
