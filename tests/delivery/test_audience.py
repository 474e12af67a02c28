"""Who receives an issue: the editor's count, the plan's snapshot and the API agree."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa

from newsletter.delivery import plan
from newsletter.delivery.audience import count_audience
from newsletter.errors import Conflict
from newsletter.extensions import db, settings
from newsletter.issues.actions import create_issue, mark_ready, plan_send
from newsletter.models import Delivery, DeliveryStatus, Issue, IssueStatus, utcnow
from tests.helpers.editors import bearer, editor_client


def _pause(sub, until: datetime) -> None:
    sub.paused_until = until
    db.session.commit()


def _deliveries(issue_id: int) -> dict[DeliveryStatus, list[str]]:
    found: dict[DeliveryStatus, list[str]] = {}
    for status, note in db.session.execute(
        sa.select(Delivery.status, Delivery.last_error).where(Delivery.issue_id == issue_id)
    ):
        found.setdefault(status, []).append(note)
    return found


@pytest.fixture
def readers(app, make_subscriber):
    """Two confirmed readers, one confirmed but paused, and three who get nothing."""
    make_subscriber("one@example.com")
    make_subscriber("two@example.com")
    _pause(make_subscriber("resting@example.com"), datetime(2099, 12, 29, 10, tzinfo=UTC))
    make_subscriber("new@example.com", status="pending")
    make_subscriber("gone@example.com", status="unsubscribed")
    make_subscriber("bad@example.com", status="bounced")


def test_the_editor_the_plan_and_the_api_count_the_same_audience(app, readers):
    assert count_audience(db.session()) == 3  # the paused reader counts: they are in it

    shown = create_issue("Shown", "Body")
    page = editor_client(app).get(f"/editor/issues/{shown.id}").get_data(as_text=True)
    assert "Send now to 3 subscribers" in page

    sent = create_issue("Sent", "Body")
    answer = app.test_client().post(f"/api/v1/issues/{sent.id}/send", headers=bearer(app))
    assert answer.status_code == 202, answer.get_data(as_text=True)
    assert "queued for 3 subscribers" in answer.get_json()["message"]
    assert answer.get_json()["issue"]["audience"] == 3

    # The paused reader is in the snapshot, already skipped, the reason on the row.
    rows = _deliveries(sent.id)
    assert sorted(rows) == [DeliveryStatus.QUEUED, DeliveryStatus.SKIPPED]
    assert rows[DeliveryStatus.QUEUED] == ["", ""]
    assert rows[DeliveryStatus.SKIPPED] == ["paused until 2099-12-29"]


def test_a_pause_that_has_ended_skips_nobody(app, make_subscriber):
    _pause(make_subscriber("back@example.com"), utcnow() - timedelta(days=1))
    issue = create_issue("Back", "Body")
    result = plan.queue_issue(db.session(), issue.id, utcnow(), 10)
    db.session.commit()
    assert (result.started, result.audience, result.nobody) == (True, 1, False)
    assert _deliveries(issue.id) == {DeliveryStatus.QUEUED: [""]}


def test_readers_who_all_paused_still_make_a_send(app, make_subscriber):
    _pause(make_subscriber("resting@example.com"), utcnow() + timedelta(days=7))
    issue = create_issue("All resting", "Body")
    result = plan.queue_issue(db.session(), issue.id, utcnow(), 10)
    db.session.commit()
    assert (result.started, result.audience, result.nobody) == (True, 1, False)
    assert list(_deliveries(issue.id)) == [DeliveryStatus.SKIPPED]


@pytest.mark.parametrize("start", ["draft", "ready", "scheduled"])
def test_with_nobody_confirmed_the_plan_says_so_and_changes_nothing(app, make_subscriber, start):
    make_subscriber("new@example.com", status="pending")
    make_subscriber("gone@example.com", status="unsubscribed")
    issue_id = create_issue("Nobody", "Body").id
    if start == "ready":
        mark_ready(issue_id, settings().weekly_slot)
    elif start == "scheduled":
        plan_send(issue_id, utcnow() + timedelta(days=1), batch_size=500)
    before = db.session.execute(sa.select(Issue.__table__).where(Issue.id == issue_id)).one()
    db.session.commit()
    assert count_audience(db.session()) == 0

    result = plan.queue_issue(db.session(), issue_id, utcnow(), 10)
    db.session.commit()
    assert result.nobody and not result.started
    assert result.status is IssueStatus(start) and result.audience == 0
    after = db.session.execute(sa.select(Issue.__table__).where(Issue.id == issue_id)).one()
    assert after == before
    assert db.session.scalar(sa.select(sa.func.count()).select_from(Delivery)) == 0


def test_send_now_with_nobody_confirmed_is_refused_as_before(app):
    issue_id = create_issue("Nobody", "Body").id
    with pytest.raises(Conflict, match="no confirmed subscribers yet; nothing was queued"):
        plan_send(issue_id, batch_size=500)
    assert db.session.get(Issue, issue_id).status is IssueStatus.DRAFT
