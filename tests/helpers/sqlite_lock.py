"""Another connection holding SQLite's write lock, given up once the app has begun to wait."""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from types import SimpleNamespace
from typing import Any

from newsletter import sqlite_setup


def hold_write_lock(path: str) -> sqlite3.Connection:
    """Another process's view of the database: a connection that takes the write lock."""
    other = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    other.execute("BEGIN IMMEDIATE")
    return other


@contextmanager
def lock_given_up_once_waited(path: str, monkeypatch: Any) -> Iterator[threading.Event]:
    """Hold the write lock until the app's own wait (never SQLite's) has begun, then commit.

    Yields the event set just before the lock is given up: code under the block that returns
    with it set went through after the lock was free, not before.
    """
    holder = hold_write_lock(path)
    found_taken, block_ended, released = threading.Event(), threading.Event(), threading.Event()

    def pause(seconds: float) -> None:  # only sqlite_setup's own wait sleeps here
        found_taken.set()
        time.sleep(seconds)

    monkeypatch.setattr(
        sqlite_setup, "time", SimpleNamespace(monotonic=time.monotonic, sleep=pause)
    )

    def release() -> None:
        while not found_taken.wait(0.05):
            if block_ended.is_set():
                return  # nobody waited our way: the lock is given up only when the block ends
        released.set()
        holder.execute("COMMIT")

    releaser = threading.Thread(target=release)
    releaser.start()
    try:
        yield released
    finally:
        block_ended.set()
        releaser.join()
        holder.close()
