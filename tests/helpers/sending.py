"""Queue an issue to a few readers and read back what became of each copy."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import sqlalchemy as sa

from newsletter.extensions import db
from newsletter.issues.actions import create_issue
from newsletter.models import Delivery, DeliveryStatus, Subscriber, utcnow
from newsletter.tasks.dispatch import send_issue


def queue_issue(n: int, make_subscriber: Any) -> tuple[int, list[Subscriber]]:
    people = [make_subscriber(f"f{i}@example.com") for i in range(n)]
    issue = create_issue("Faults", "Body")
    send_issue(issue.id)
    return issue.id, people


def send_and_wait(subject: str, body: str, run_jobs: Any, inbox: Any, n: int = 1) -> Any:
    """Send an issue to whoever is on the list, run the jobs, wait for ``n`` mails; the issue."""
    issue = create_issue(subject, body)
    send_issue(issue.id)
    run_jobs()
    inbox.wait_for(n)
    return issue


def deliveries(issue_id: int) -> dict[str, tuple[str, int, str]]:
    rows = db.session.execute(
        sa.select(Subscriber.email, Delivery.status, Delivery.attempts, Delivery.last_error)
        .join(Subscriber, Subscriber.id == Delivery.subscriber_id)
        .where(Delivery.issue_id == issue_id)
    ).all()
    db.session.commit()
    return {r[0]: (r[1].value, r[2], r[3]) for r in rows}


def claimed_delivery(make_subscriber: Any, email: str, claim_id: str) -> int:
    """Queue a one-reader issue and put its delivery in ``claim_id``'s hands; return its id."""
    make_subscriber(email)
    issue = create_issue("Claimed", "Body")
    send_issue(issue.id)
    delivery_id = db.session.scalar(sa.select(Delivery.id).where(Delivery.issue_id == issue.id))
    db.session.execute(
        sa.update(Delivery)
        .where(Delivery.id == delivery_id)
        .values(
            status=DeliveryStatus.SENDING,
            claimed_by=claim_id,
            lease_until=utcnow() + timedelta(minutes=5),
        )
    )
    db.session.commit()
    return int(delivery_id)
