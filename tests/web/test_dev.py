"""`newsletter dev` runs everything on one machine: a newcomer subscribes and confirms."""

from __future__ import annotations

import http.cookiejar
import os
import re
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

import pytest

from tests.helpers import csrf_from, free_port

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[2]


class Browser:
    """Just enough of a browser: cookies, GET and form POST, answers as (status, text)."""

    def __init__(self, base: str) -> None:
        self.base = base
        self.opener = urllib.request.build_opener(
            urllib.request.HTTPCookieProcessor(http.cookiejar.CookieJar())
        )

    def get(self, path: str) -> tuple[int, str]:
        return self._open(urllib.request.Request(self.base + path))

    def post(self, path: str, fields: dict[str, str]) -> tuple[int, str]:
        body = urllib.parse.urlencode(fields).encode()
        return self._open(urllib.request.Request(self.base + path, data=body, method="POST"))

    def _open(self, request: urllib.request.Request) -> tuple[int, str]:
        try:
            with self.opener.open(request, timeout=10) as answer:
                return answer.status, answer.read().decode()
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read().decode()


def _wait_for(check, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            found = check()
        except OSError:
            found = None
        if found:
            return found
        time.sleep(0.25)
    raise AssertionError(f"timed out waiting for {what}")


@pytest.fixture
def dev_server(tmp_path):
    port, mail_port = free_port(), free_port()
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("DATABASE_", "REDIS_", "SMTP_", "TEST_", "BASE_URL", "FLASK_"))
    }
    env.update(
        INSTANCE_PATH=str(tmp_path / "instance"),
        NEWSLETTER_ENV="development",
        PYTHONPATH=str(REPO),  # the code under test, not whatever is installed
    )
    log = open(tmp_path / "dev.log", "wb")  # noqa: SIM115 - closed below
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "newsletter.main",
            "dev",
            "--port",
            str(port),
            "--mail-port",
            str(mail_port),
        ],
        cwd=tmp_path,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        _wait_for(lambda: Browser(base).get("/healthz")[0] == 200, 60, "newsletter dev to start")
        yield base, proc
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGINT)
            try:
                proc.wait(20)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(5)
        log.close()
        print((tmp_path / "dev.log").read_text(errors="replace")[-3000:])


def test_a_newcomer_subscribes_reads_the_mail_at_dev_mail_and_confirms(dev_server):
    base, proc = dev_server
    me = Browser(base)
    status, front = me.get("/")
    assert status == 200 and "Subscribe" in front
    status, answer = me.post(
        "/subscribe", {"email": "new@example.com", "csrf_token": csrf_from(front)}
    )
    assert status == 200 and "Check your inbox" in answer

    def mail_link():
        page = me.get("/dev/mail")[1]
        return re.findall(r'href="(/dev/mail/[0-9]{20}-[0-9a-f]{8}\.eml)"', page)

    (mail,) = _wait_for(mail_link, 30, "the confirmation at /dev/mail")
    status, shown = me.get(mail)
    assert status == 200 and "new@example.com" in shown
    assert "<iframe" in shown and "sandbox=" in shown
    confirm = re.search(rf'<a href="({re.escape(base)}/confirm/[^"]+)"', shown)
    assert confirm, "no clickable confirm link in the captured mail"
    path = confirm.group(1)[len(base) :]
    status, page = Browser(base).get(path)  # another browser: one button, nothing changed
    assert status == 200 and "Confirm my subscription" in page
    status, welcome = me.get(path)  # the browser that signed up: confirmed in one click
    assert status == 200 and "You're subscribed" in welcome
    _wait_for(lambda: len(mail_link()) == 2, 30, "the welcome mail at /dev/mail")
    assert me.get("/dev/mail/../../secret_key")[0] == 404
    assert me.get("/dev/mail/..%2F..%2Fsecret_key")[0] == 404

    os.killpg(proc.pid, signal.SIGTERM)
    # It stops the worker (which finishes its job), the catcher and the embedded Redis (which
    # saves its data): seconds on a quiet box, far more on a loaded one.
    assert proc.wait(90) == 0
