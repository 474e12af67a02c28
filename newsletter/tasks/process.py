"""This worker process: its name, its claim owner, whether it was asked to stop, and whether
another worker process on this machine is still alive."""

from __future__ import annotations

import functools
import hashlib
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
    """Return a name unique to this process on this machine (RQ's worker name, in logs)."""
    return f"{socket.gethostname()}.{os.getpid()}"


@functools.cache
def _pid_space() -> str:
    """Return a token naming this boot of this machine's process-id namespace.

    Two processes see each other's pids only when they share it: the same host name alone is
    not enough (two containers may both be called "worker"), and a container restarted under
    the same name starts a new namespace. Where /proc cannot tell, the host name stands in,
    which can only make a dead worker's claims wait for their lease, never free a live one's:
    the token then differs from the one a namespace-aware worker wrote.
    """
    parts = [socket.gethostname()]
    for path in ("/proc/sys/kernel/random/boot_id",):
        try:
            with open(path) as fh:
                parts.append(fh.read().strip())
        except OSError:
            parts.append("-")
    try:
        parts.append(str(os.stat("/proc/self/ns/pid").st_ino))
    except OSError:
        parts.append("-")
    return hashlib.sha256("\0".join(parts).encode()).hexdigest()[:12]


def claim_owner() -> str:
    """Return this process's name as written on the deliveries it claims: ``<space>.<pid>``."""
    return f"{_pid_space()}.{os.getpid()}"


def owner_is_dead(owner: str) -> bool:
    """Return True only when ``owner`` was a process in our pid namespace that has exited.

    Owners from another machine or namespace, or written by an older version, are not
    judged: their claims are taken back when their lease runs out.
    """
    space, _, pid_text = owner.partition(".")
    if space != _pid_space() or not pid_text.isdigit():
        return False
    pid = int(pid_text)
    if pid == os.getpid():
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False  # it exists, under another user
    # A killed child that its parent has not reaped yet is a zombie: dead, though listed.
    try:
        with open(f"/proc/{pid}/stat") as fh:
            state = fh.read().rpartition(")")[2].split()[0]
    except (OSError, IndexError):
        return False
    return state in ("Z", "X")
