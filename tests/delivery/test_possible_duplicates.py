""" "Possible duplicates" is the true bound: only a copy that may have been in flight counts."""

from __future__ import annotations

from datetime import timedelta

import sqlalchemy as sa

from newsletter.delivery import claims
from newsletter.delivery.lifecycle import LEASE_EXPIRED, LEASE_EXPIRED_UNSENT
from newsletter.extensions import db
from newsletter.issues.actions import create_issue, issue_status
from newsletter.models import Delivery, utcnow
from newsletter.tasks.dispatch import send_issue
from newsletter.tasks.tick import reconcile


def test_a_lapsed_claim_counts_one_copy_in_flight_not_its_whole_chunk(
    app, make_subscriber, run_jobs, inbox
):
    for i in range(5):
        make_subscriber(f"chunk{i}@example.com")
    issue = create_issue("Lapsed", "Body")
    issue_id = issue.id
    send_issue(issue_id)
    # A worker claims all five and goes silent before its first answer was recorded.
    rows = claims.claim(db.session, issue_id, 0, "silent-worker:1:1", utcnow(), 1)
    db.session.commit()
    assert len(rows) == 5
    run_jobs()
    assert inbox.messages == []  # the lease still holds
    db.session.execute(sa.update(Delivery).values(lease_until=utcnow() - timedelta(seconds=1)))
    db.session.commit()
    assert "reclaimed 5" in reconcile()
    errors = db.session.scalars(sa.select(Delivery.last_error).order_by(Delivery.id)).all()
    # The chunk goes out in order: only its first copy can have reached the relay.
    assert errors == [LEASE_EXPIRED] + [LEASE_EXPIRED_UNSENT] * 4
    run_jobs()
    inbox.wait_for(5)
    found = issue_status(issue_id)
    assert found["status"] == "sent" and found["possible_duplicates"] == 1
    out = app.test_cli_runner().invoke(args=["issues", "status", str(issue_id)])
    assert "possible_duplicates 1" in out.output
