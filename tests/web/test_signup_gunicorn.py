"""A room of people signing up at once through gunicorn with three worker processes.

Three processes share the per-domain counter only through the database: a sign-up whose
clock reading is older than one another process already wrote must still be counted and
mailed. Then a real reader at the same domain still gets their mail.
"""

from __future__ import annotations

import http.cookiejar
import os
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.parse
import urllib.request

import pytest

from tests.conftest import app_config
from tests.helpers import csrf_from, free_port

pytestmark = pytest.mark.slow

ROOM = 45


def _wait_for_port(port: int) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.1)
    raise AssertionError("gunicorn did not start")


def _sign_up(port: int, email: str, barrier: threading.Barrier | None) -> str:
    """Do what a browser does: load the form, post it; return where the answer led."""
    opener = urllib.request.build_opener(
        urllib.request.HTTPCookieProcessor(http.cookiejar.CookieJar())
    )
    base = f"http://127.0.0.1:{port}"
    with opener.open(f"{base}/", timeout=30) as page:
        token = csrf_from(page.read().decode())
    if barrier is not None:
        barrier.wait(timeout=60)
    data = urllib.parse.urlencode({"email": email, "name": "", "csrf_token": token}).encode()
    try:
        with opener.open(f"{base}/subscribe", data=data, timeout=60) as answer:
            return answer.geturl().rsplit("/", 1)[-1]
    except urllib.error.HTTPError as exc:
        exc.close()
        return str(exc.code)


def test_a_room_signing_up_through_three_web_workers_is_each_mailed(
    app, tmp_path, _migrated, redis_url, smtp_controller, run_jobs, inbox
):
    env = {**os.environ, **app_config(tmp_path, _migrated, redis_url, smtp_controller[0].port)}
    port = free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "gunicorn", "--bind", f"127.0.0.1:{port}", "--workers", "3"]
        + ["newsletter.wsgi:app"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    people = [f"member{n}@room.example" for n in range(ROOM)]
    answers: dict[str, str] = {}
    try:
        _wait_for_port(port)
        barrier = threading.Barrier(ROOM)

        def one(email: str) -> None:
            answers[email] = _sign_up(port, email, barrier)

        threads = [threading.Thread(target=one, args=(e,)) for e in people]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        late = _sign_up(port, "real.reader@room.example", None)
    finally:
        server.terminate()
        server.wait(timeout=30)
    # Every one of them was told to check their inbox, and every one of them gets the mail.
    assert set(answers.values()) == {"check-inbox"}, answers
    assert late == "check-inbox"
    run_jobs()
    received = sorted(m["To"] for m in inbox.wait_for(ROOM + 1))
    assert received == sorted([*people, "real.reader@room.example"])
