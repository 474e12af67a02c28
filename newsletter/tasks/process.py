"""This worker process: its name, and whether it was asked to stop."""

from __future__ import annotations

import os
import socket
import threading

# Set by the signal handler; long jobs (deliver_batch) check it between messages.
_stop = threading.Event()


def stop_requested() -> bool:
    """Return whether this process was asked to stop (SIGTERM/SIGINT)."""
    return _stop.is_set()


def request_stop() -> None:
    """Ask every long job in this process to finish what it holds and return."""
    _stop.set()


def wait_for_stop(seconds: float) -> bool:
    """Sleep up to ``seconds``; return True at once when a stop is requested."""
    return _stop.wait(seconds)


def worker_name() -> str:
    """Return a name unique to this process on this machine (also used as a lease owner)."""
    return f"{socket.gethostname()}.{os.getpid()}"
