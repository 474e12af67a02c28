"""An issue's states: the table of moves, and the one conditional UPDATE that applies them."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa

from newsletter.delivery.issue_state import MOVES, IssueMove, allowed, move_issue
from newsletter.extensions import db
from newsletter.models import Issue, IssueStatus

S = IssueStatus
M = IssueMove
UNSENT = {S.DRAFT, S.READY, S.SCHEDULED}

# Written out again here, on purpose: the table in the code must say exactly this.
EXPECTED: dict[IssueMove, tuple[set[IssueStatus], IssueStatus]] = {
    M.SCHEDULE: (UNSENT, S.SCHEDULED),
    M.MARK_READY: ({S.DRAFT, S.SCHEDULED}, S.READY),
    M.QUEUE: (UNSENT, S.SENDING),
    M.UNSCHEDULE: ({S.SCHEDULED}, S.DRAFT),
    M.PAUSE: ({S.SENDING}, S.PAUSED),
    M.RESUME: ({S.PAUSED}, S.SENDING),
    M.FINISH: ({S.SENDING}, S.SENT),
    M.CANCEL: (UNSENT | {S.SENDING, S.PAUSED}, S.CANCELLED),
}
ALLOWED = [(frm, move) for move, (sources, _to) in EXPECTED.items() for frm in sorted(sources)]
EARLIER = datetime(2000, 1, 1, tzinfo=UTC)
_SLUGS = itertools.count(1)


def test_every_move_is_in_the_table():
    assert set(MOVES) == set(IssueMove) == set(EXPECTED)


@pytest.mark.parametrize("move", list(IssueMove))
@pytest.mark.parametrize("status", list(IssueStatus))
def test_the_table_allows_exactly_the_listed_moves(status, move):
    sources, target = EXPECTED[move]
    assert allowed(status, move) == (target if status in sources else None)


def test_nothing_leaves_sent_or_cancelled():
    for status in (S.SENT, S.CANCELLED):
        assert all(allowed(status, move) is None for move in IssueMove)


def _issue(status: IssueStatus, **values) -> int:
    issue = Issue(
        slug=f"issue-{next(_SLUGS)}",
        subject="Subject",
        body_md="Body",
        status=status,
        updated_at=EARLIER,
        **values,
    )
    db.session.add(issue)
    db.session.commit()
    return issue.id


def _row(issue_id: int) -> Issue:
    db.session.expire_all()
    return db.session.get(Issue, issue_id)


def _values(move: IssueMove, now: datetime) -> dict:
    if move is M.SCHEDULE:
        return {"scheduled_at": now + timedelta(days=1)}
    if move in (M.PAUSE, M.UNSCHEDULE):
        return {"pause_reason": "a reason"}
    return {}


@pytest.mark.parametrize(("frm", "move"), ALLOWED)
def test_an_allowed_move_changes_one_row_and_what_goes_with_it(app, frm, move):
    now = datetime(2030, 5, 6, 7, 8, tzinfo=UTC)
    issue_id = _issue(frm, scheduled_at=EARLIER, pause_reason="old")
    assert move_issue(db.session(), issue_id, move, now, **_values(move, now)) is True
    db.session.commit()
    row = _row(issue_id)
    assert row.status is EXPECTED[move][1] and row.updated_at == now
    reasons = {M.QUEUE: "", M.RESUME: "", M.PAUSE: "a reason", M.UNSCHEDULE: "a reason"}
    assert row.pause_reason == reasons.get(move, "old")
    cleared = move in (M.MARK_READY, M.UNSCHEDULE, M.CANCEL)
    rescheduled = now + timedelta(days=1) if move is M.SCHEDULE else EARLIER
    assert row.scheduled_at == (None if cleared else rescheduled)
    assert row.queued_at == (now if move is M.QUEUE else None)
    assert row.sent_at == (now if move is M.FINISH else None)


@pytest.mark.parametrize(
    ("frm", "move"),
    [
        (S.SENT, M.PAUSE),
        (S.CANCELLED, M.QUEUE),
        (S.DRAFT, M.RESUME),
        (S.READY, M.MARK_READY),
        (S.SENDING, M.SCHEDULE),
        (S.PAUSED, M.FINISH),
        (S.DRAFT, M.UNSCHEDULE),
        (S.SENT, M.CANCEL),
    ],
)
def test_a_refused_move_changes_nothing(app, frm, move):
    now = datetime(2030, 5, 6, tzinfo=UTC)
    issue_id = _issue(frm, pause_reason="old")
    assert move_issue(db.session(), issue_id, move, now, **_values(move, now)) is False
    db.session.commit()
    row = _row(issue_id)
    assert (row.status, row.updated_at, row.pause_reason) == (frm, EARLIER, "old")


def test_an_extra_condition_that_fails_stops_the_move(app):
    issue_id = _issue(S.SENDING)
    now = datetime(2030, 5, 6, tzinfo=UTC)
    assert not move_issue(db.session(), issue_id, M.FINISH, now, where=[sa.false()])
    assert move_issue(db.session(), issue_id, M.FINISH, now, where=[sa.true()])
    db.session.commit()
    assert _row(issue_id).status is S.SENT


def test_two_callers_racing_for_one_move_move_the_row_once(app):
    issue_id = _issue(S.DRAFT)
    now = datetime(2030, 5, 6, tzinfo=UTC)
    results = [move_issue(db.session(), issue_id, M.QUEUE, now) for _ in range(2)]
    db.session.commit()
    assert results == [True, False]
