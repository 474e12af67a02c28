"""Record what the SMTP server answered: retry later with backoff, or fail for good."""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Protocol

import sqlalchemy as sa
from sqlalchemy.orm import Session

from newsletter.delivery.claims import Claimed, held
from newsletter.models import BounceKind, Delivery, DeliveryStatus, rowcount

D = DeliveryStatus


@dataclass(frozen=True)
class BounceReport:
    """What came back about one copy: from the SMTP answer now, or a notification later."""

    subscriber_id: int
    kind: BounceKind
    diagnostic: str
    issue_id: int | None = None
    delivery_id: int | None = None
    source: str = "smtp"
    status_code: str = ""
    raw: str = ""


def retry_delay(attempts: int, base: float) -> float:
    """Return the wait before attempt ``attempts + 1``: exponential, with a little jitter."""
    return base * (2.0**attempts) * random.uniform(0.9, 1.1)


def record_temporary(
    session: Session,
    delivery: Claimed,
    claim_id: str,
    now: datetime,
    error: str,
    *,
    max_attempts: int,
    retry_base: float,
) -> DeliveryStatus:
    """Put the delivery back for a later retry, or fail it when attempts are used up."""
    attempts = delivery.attempts + 1
    if attempts >= max_attempts:
        values: dict[str, Any] = {"status": D.FAILED, "lease_until": None}
        outcome = D.FAILED
    else:
        wait = retry_delay(delivery.attempts, retry_base)
        values = {
            "status": D.QUEUED,
            "lease_until": None,
            "claimed_by": None,
            "next_attempt_at": now + timedelta(seconds=wait),
        }
        outcome = D.QUEUED
    session.execute(
        sa.update(Delivery)
        .where(*held(delivery.delivery_id, claim_id))
        .values(attempts=attempts, last_error=error[:300], **values)
        .execution_options(synchronize_session=False)
    )
    return outcome


def record_permanent(
    session: Session, delivery: Claimed, claim_id: str, now: datetime, error: str
) -> bool:
    """Fail the delivery for good; the caller marks the address bounced."""

    changed = rowcount(
        session.execute(
            sa.update(Delivery)
            .where(*held(delivery.delivery_id, claim_id))
            .values(
                status=D.FAILED,
                lease_until=None,
                attempts=Delivery.attempts + 1,
                last_error=error[:300],
            )
            .execution_options(synchronize_session=False)
        )
    )
    return changed == 1


class FailureStreak(Protocol):
    """Consecutive failed messages of an issue, counted across every worker that sends it."""

    def failed(self, issue_id: int) -> int: ...  # count this failure; return the streak
    # A message got through: the streak ends. Called for every message, so it must be cheap.
    def succeeded(self, issue_id: int) -> None: ...
    def clear(self, issue_id: int) -> None: ...  # the issue was paused: start counting afresh


class LocalStreak:
    """A failure streak kept in this process only (one worker, or a test)."""

    def __init__(self) -> None:
        self.counts: dict[int, int] = {}

    def failed(self, issue_id: int) -> int:
        """Count one failure; return the streak."""
        self.counts[issue_id] = self.counts.get(issue_id, 0) + 1
        return self.counts[issue_id]

    def succeeded(self, issue_id: int) -> None:
        """End the streak."""
        self.counts[issue_id] = 0

    def clear(self, issue_id: int) -> None:
        """Forget the streak."""
        self.counts.pop(issue_id, None)
