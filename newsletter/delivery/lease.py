"""Keep a running batch's claims alive: short leases, renewed from a thread of their own.

A claim's lease is how long other workers must wait before they may take its rows back. A
long lease makes a crashed worker's rows wait; a short one renewed only between messages
would lapse while one slow SMTP answer holds the batch. So the lease is short, and a thread
renews it every sixth of its length whatever the batch is doing: the rows of a live worker
never lapse, and a dead worker's rows are free one lease after its last renewal (at once,
when the reconciler can see that the process is gone: ``lifecycle.reconcile``'s ``dead``).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from datetime import timedelta
from types import TracebackType

import sqlalchemy as sa

from newsletter.models import Delivery, DeliveryStatus, utcnow

log = logging.getLogger(__name__)


def renew(
    conn: sa.Connection, issue_id: int, batch: int, claim_base: str, lease_seconds: float
) -> int:
    """Push back the lease of every row the batch ``claim_base`` holds; return how many."""
    result = conn.execute(
        sa.update(Delivery)
        .where(
            Delivery.issue_id == issue_id,
            Delivery.batch == batch,
            Delivery.status == DeliveryStatus.SENDING,
            Delivery.claimed_by.startswith(claim_base + ":", autoescape=True),
        )
        .values(lease_until=utcnow() + timedelta(seconds=lease_seconds))
    )
    return int(result.rowcount)


class LeaseKeeper(threading.Thread):
    """Renew a batch's leases (and call ``beat``, e.g. a liveness key) until stopped."""

    def __init__(
        self,
        engine: sa.Engine,
        issue_id: int,
        batch: int,
        claim_base: str,
        lease_seconds: float,
        beat: Callable[[], None] = lambda: None,
    ) -> None:
        super().__init__(name=f"lease-{issue_id}-{batch}", daemon=True)
        self.engine = engine
        self.issue_id, self.batch, self.claim_base = issue_id, batch, claim_base
        self.lease_seconds = lease_seconds
        self.interval = max(lease_seconds / 6, 0.1)
        self.beat = beat
        self._done = threading.Event()

    def run(self) -> None:
        while not self._done.wait(self.interval):
            self.tick()

    def tick(self) -> None:
        """Renew once; a database or Redis blip is logged and tried again next time."""
        try:
            with self.engine.begin() as conn:
                renew(conn, self.issue_id, self.batch, self.claim_base, self.lease_seconds)
        except Exception:
            log.warning("could not renew the leases of %s", self.claim_base, exc_info=True)
        self.beat_safely()

    def __enter__(self) -> LeaseKeeper:
        self.beat_safely()
        self.start()
        return self

    def beat_safely(self) -> None:
        """Call ``beat``; its failure (Redis away) must not stop the renewals."""
        try:
            self.beat()
        except Exception:
            log.warning("liveness beat failed for %s", self.claim_base, exc_info=True)

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._done.set()
        self.join(timeout=self.interval + 5)
