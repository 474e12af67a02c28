"""A webhook try has one deadline for all of it: the name lookup, the TLS handshake, the answer.

Real slow servers on 127.0.0.1 stand in for bad receivers; the slow name server runs in a
network namespace of its own, so no lookup leaves the machine.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

from newsletter.extensions import db
from newsletter.models import WebhookDelivery
from newsletter.subscribers.state import unsubscribe
from newsletter.webhooks.events import register_webhook
from newsletter.webhooks.post import DEADLINE

ROOT = Path(__file__).resolve().parents[2]
MARGIN = 2.0


class StallingTLS:
    """Accept, read the ClientHello, then never finish the handshake.

    With ``drip``, answer with the header of a 16 kB TLS record and then one byte of it every
    ``drip`` seconds, so that no single socket read ever waits long.
    """

    def __init__(self, drip: float | None = None) -> None:
        self.drip = drip
        self.hello = threading.Event()
        self.stop = threading.Event()
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.url = f"https://127.0.0.1:{self.sock.getsockname()[1]}/hook"
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self._stall, args=(conn,), daemon=True).start()

    def _stall(self, conn: socket.socket) -> None:
        with conn:
            try:
                conn.recv(65536)
                self.hello.set()
                if self.drip is None:
                    self.stop.wait()
                    return
                conn.sendall(b"\x16\x03\x03\x40\x00")  # a handshake record of 16,384 bytes …
                while not self.stop.wait(self.drip):
                    conn.sendall(b"\x02")  # … that comes a byte at a time
            except OSError:
                return

    def close(self) -> None:
        self.stop.set()
        self.sock.close()


@pytest.fixture
def stalling() -> Iterator[type[StallingTLS]]:
    made: list[StallingTLS] = []

    def make(drip: float | None = None) -> StallingTLS:
        server = StallingTLS(drip)
        made.append(server)
        return server

    yield make  # type: ignore[misc]
    for server in made:
        server.close()


def _one_delivery_to(url: str, make_subscriber, run_jobs) -> tuple[float, WebhookDelivery]:
    register_webhook(db.session, url, ["subscriber.unsubscribed"])
    db.session.commit()
    sub = make_subscriber(status="confirmed")
    unsubscribe(db.session, sub.id)
    db.session.commit()
    started = time.monotonic()
    assert run_jobs() == 1
    took = time.monotonic() - started
    print(f"{url}: recorded after {took:.2f} s")
    row = db.session.scalar(sa.select(WebhookDelivery))
    assert row is not None
    return took, row


@pytest.mark.parametrize("drip", [None, 1.0], ids=["silent", "dripping"])
def test_a_tls_handshake_that_never_ends_is_cut_off_at_the_deadline(
    app, run_jobs, make_subscriber, stalling, drip
):
    server = stalling(drip)
    took, row = _one_delivery_to(server.url, make_subscriber, run_jobs)
    assert server.hello.is_set()  # it got as far as the handshake
    assert DEADLINE - 0.5 <= took <= DEADLINE + MARGIN, took
    assert (row.status, row.attempts, row.response_code, row.last_error) == (
        "pending",
        1,
        None,
        "timed out",
    )


# Run inside a network namespace of its own whose /etc/resolv.conf names a server on its own
# loopback that reads every query and answers none. The resolver is told to wait 30 s for it,
# three times the deadline.
SLOW_DNS = textwrap.dedent(
    """
    import socket, sys, threading, time
    sys.path.insert(0, sys.argv[1])
    from newsletter.webhooks.post import Failed, post

    silent = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    silent.bind(("127.0.0.1", 53))
    threading.Thread(target=lambda: [silent.recv(512) for _ in iter(int, 1)], daemon=True).start()
    started = time.monotonic()
    try:
        post("http://hooks.slow-dns.test/hook", b"{}", {}, allow=("hooks.slow-dns.test",))
        outcome = "answered"
    except Failed as exc:
        outcome = str(exc)
    print(f"{time.monotonic() - started:.2f} {outcome}")
    """
)


def _in_own_network(tmp_path: Path, script: str) -> list[str] | None:
    """Return a command running ``script`` in new mount and network namespaces, or None."""
    if not (shutil.which("unshare") and shutil.which("ip") and shutil.which("mount")):
        return None
    resolv = tmp_path / "resolv.conf"
    resolv.write_text("nameserver 127.0.0.1\noptions timeout:30 attempts:1\n")
    (tmp_path / "slow_dns.py").write_text(script)
    probe = subprocess.run(
        ["unshare", "-rmn", "sh", "-c", "ip link set lo up"], capture_output=True, timeout=30
    )
    if probe.returncode != 0:
        return None
    setup = f'ip link set lo up && mount --bind {resolv} /etc/resolv.conf && exec "$@"'
    return [
        "unshare", "-rmn", "sh", "-c", setup, "sh",
        sys.executable, str(tmp_path / "slow_dns.py"), str(ROOT),
    ]  # fmt: skip


def test_a_name_server_that_never_answers_is_cut_off_at_the_deadline(tmp_path):
    command = _in_own_network(tmp_path, SLOW_DNS)
    if command is None:
        pytest.skip("needs unshare (user, mount and network namespaces) and ip")
    done = subprocess.run(command, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    took, outcome = done.stdout.split(maxsplit=1)
    print(f"silent name server: {outcome.strip()} after {took} s")
    assert outcome.strip() == "timed out"
    assert DEADLINE - 0.5 <= float(took) <= DEADLINE + MARGIN, took
