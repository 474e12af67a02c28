"""The evergreen tick in process: bounded, one row per (tip, reader), the same send job."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import sqlalchemy as sa

from newsletter.extensions import db
from newsletter.models import Delivery, DeliveryStatus, Issue, IssueStatus, Subscriber, utcnow
from newsletter.tasks.evergreen import evergreen_tick


def _tip(n: int, status: IssueStatus = IssueStatus.ARCHIVED) -> Issue:
    issue = Issue(
        subject=f"Old tip {n}",
        body_md=f"Body {n}.",
        slug=f"old-{n}",
        status=status,
        sent_at=datetime(2020, 1, n, tzinfo=UTC),
    )
    db.session.add(issue)
    db.session.commit()
    return issue


def test_one_tick_hands_the_first_tip_and_the_send_job_sends_it(fault_app, add_reader, run_jobs, sink):
    _tip(2), _tip(1)
    reader = add_reader("seq@example.com")
    reader.evergreen, reader.evergreen_due_at = True, utcnow()
    db.session.commit()
    evergreen_tick()
    run_jobs()
    assert [a.rcpt for a in sink.accepted] == ["seq@example.com"]
    assert b"Tip 1 of 2" in sink.accepted[0].raw
    db.session.expire_all()
    assert reader.evergreen_position == 1
    assert reader.evergreen_due_at is not None and reader.evergreen_due_at > utcnow() + timedelta(days=6)
    # Not due yet: another tick hands out nothing.
    evergreen_tick()
    run_jobs()
    assert len(sink.accepted) == 1
