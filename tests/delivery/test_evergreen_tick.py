"""The evergreen tick in process: bounded, one row per (tip, reader), the same send job."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import sqlalchemy as sa

from newsletter.delivery import evergreen
from newsletter.extensions import db
from newsletter.models import Delivery, Issue, IssueStatus, Subscriber, SubscriberStatus, utcnow
from newsletter.tasks.evergreen import evergreen_tick
from tests.helpers.editors import editor_client


def tip_rows(page: str) -> list[list[str]]:
    """Return the cells' text of each row of the editor's sequence table (not the forms)."""
    rows = re.findall(r'<tr id="tip-\d+"[^>]*>(.*?)</tr>', page, re.S)
    return [
        [
            re.sub(r"<[^>]+>", "", cell).strip()
            for cell in re.findall(r"<td[^>]*>(.*?)</td>", row, re.S)
        ][:7]
        for row in rows
    ]


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


def _in_sequence(email: str, add_reader) -> Subscriber:
    reader = add_reader(email)
    reader.evergreen, reader.evergreen_due_at = True, utcnow()
    db.session.commit()
    return reader


def test_one_tick_hands_the_first_tip_and_the_send_job_sends_it(
    fault_app, add_reader, run_jobs, sink
):
    _tip(2), _tip(1)
    reader = _in_sequence("seq@example.com", add_reader)
    evergreen_tick()
    run_jobs()
    assert [a.rcpt for a in sink.accepted] == ["seq@example.com"]
    assert b"Old tip 1" in sink.accepted[0].raw and b"Tip 1 of 2" in sink.accepted[0].raw
    db.session.expire_all()
    assert reader.evergreen_position == 1
    next_due = reader.evergreen_due_at
    assert next_due is not None and next_due > utcnow() + timedelta(days=6)
    # Not due yet: another tick hands out nothing.
    evergreen_tick()
    run_jobs()
    assert len(sink.accepted) == 1


def test_a_tick_takes_at_most_its_share_of_due_readers(fault_app, add_reader, sink):
    tip = _tip(1)
    for i in range(5):
        _in_sequence(f"r{i}@example.com", add_reader)
    found = evergreen.step(db.session(), utcnow(), 604800, limit=2)
    db.session.commit()
    assert found.readers == 2 and found.queued == {tip.id: 2}
    rows = db.session.scalar(sa.select(sa.func.count()).select_from(Delivery))
    assert rows == 2
    found = evergreen.step(db.session(), utcnow(), 604800, limit=10)
    db.session.commit()
    assert found.queued == {tip.id: 3}


def test_readers_out_of_the_sequence_or_off_the_list_get_nothing(fault_app, add_reader, sink):
    _tip(1)
    left = _in_sequence("left@example.com", add_reader)
    left.evergreen = False
    gone = _in_sequence("gone@example.com", add_reader)
    gone.status = SubscriberStatus.UNSUBSCRIBED
    paused = _in_sequence("paused@example.com", add_reader)
    paused.paused_until = utcnow() + timedelta(days=3)
    db.session.commit()
    found = evergreen.step(db.session(), utcnow(), 604800)
    db.session.commit()
    assert found.readers == 3 and found.queued == {}
    db.session.expire_all()
    assert left.evergreen_due_at is None and gone.evergreen_due_at is None
    assert paused.evergreen_due_at == paused.paused_until


def test_drafts_and_live_sends_are_not_in_the_sequence(fault_app):
    first = _tip(1)
    _tip(2, IssueStatus.DRAFT)
    third = _tip(3, IssueStatus.SENT)
    _tip(4, IssueStatus.SENDING)
    assert evergreen.sequence(db.session()) == [first.id, third.id]
    assert evergreen.tip_number(db.session(), third.id) == (2, 2)


def test_the_editor_sees_per_tip_counts_and_each_readers_position(
    fault_app, add_reader, run_jobs, sink
):
    first, second = _tip(1), _tip(2)
    ann = _in_sequence("ann@example.com", add_reader)
    _in_sequence("bob@example.com", add_reader)
    evergreen_tick()
    run_jobs()
    assert len(sink.accepted) == 2
    client = editor_client(fault_app)
    page = client.get("/editor/archive").get_data(as_text=True)
    assert '<span id="sequence-readers">2</span>' in page
    page = client.get("/editor/sequence").get_data(as_text=True)
    rows = [(r[0], r[1], r[4]) for r in tip_rows(page)]
    assert rows == [("1", first.subject, "2"), ("2", second.subject, "0")]
    assert '<strong id="sequence-readers">2</strong>' in page
    page = client.get(f"/editor/subscribers/{ann.id}").get_data(as_text=True)
    assert "in the sequence, at tip 1 of 2" in page
