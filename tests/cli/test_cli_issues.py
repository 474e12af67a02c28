"""`newsletter issues …` as an editor types it."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from newsletter.extensions import db, settings
from newsletter.issues.actions import create_issue, mark_ready
from newsletter.models import Delivery, Issue, Subscriber, SubscriberStatus, utcnow
from newsletter.tasks import tick as jobs
from newsletter.tasks.dispatch import send_issue
from tests.helpers import text_part, truncate_all


def test_create_send_and_status(app, make_subscriber, run_jobs, inbox, tmp_path):
    make_subscriber("one@example.com")
    make_subscriber("two@example.com")
    body = tmp_path / "tip.md"
    body.write_text("Use **rg** instead of grep.", encoding="utf-8")
    runner = app.test_cli_runner()
    made = runner.invoke(args=["issues", "create", "--subject", "Try rg", "--body-file", str(body)])
    assert made.exit_code == 0, made.output
    issue_id = int(made.output.strip().splitlines()[-1])
    sent = runner.invoke(args=["issues", "send", str(issue_id)])
    assert sent.exit_code == 0 and "queued for 2 subscribers" in sent.output
    again = runner.invoke(args=["issues", "send", str(issue_id)])
    assert again.exit_code == 0 and "nothing new was queued" in again.output
    run_jobs()
    inbox.wait_for(2)
    status = runner.invoke(args=["issues", "status", str(issue_id)])
    lines = status.output.splitlines()
    assert lines[:5] == ["state sent", "queued 0", "sent 2", "failed 0", "skipped 0"]
    watched = runner.invoke(args=["issues", "status", str(issue_id), "--watch"])
    assert watched.exit_code == 0 and "sent 2" in watched.output and "100%" in watched.output


def test_test_copy_and_schedule(app, make_subscriber, inbox, tmp_path):
    body = tmp_path / "tip.md"
    body.write_text("Hello", encoding="utf-8")
    runner = app.test_cli_runner()
    out = runner.invoke(args=["issues", "create", "--subject", "Later", "--body-file", str(body)])
    issue_id = out.output.strip().splitlines()[-1]
    test = runner.invoke(args=["issues", "send", issue_id, "--test-to", "me@example.com"])
    assert test.exit_code == 0, test.output
    (msg,) = inbox.wait_for(1)
    assert msg["Subject"] == "[Test] Later" and "Hello" in text_part(msg)
    naive = runner.invoke(args=["issues", "send", issue_id, "--at", "2030-01-01T09:00"])
    assert naive.exit_code != 0 and "has no time zone" in naive.output
    at = runner.invoke(args=["issues", "send", issue_id, "--at", "2030-01-01T09:00+01:00"])
    assert at.exit_code == 0 and "2030-01-01 08:00 UTC" in at.output
    assert db.session.get(Issue, int(issue_id)).status.value == "scheduled"


def test_errors_are_one_line_and_non_zero(app, tmp_path):
    runner = app.test_cli_runner()
    for args in (
        ["issues", "send", "999"],
        ["issues", "pause", "999"],
        ["issues", "status", "999"],
        ["issues", "send", "1", "--at", "next tuesday"],
    ):
        result = runner.invoke(args=args)
        assert result.exit_code != 0
        assert "Traceback" not in result.output
        assert len(result.output.strip().splitlines()) == 1, result.output


def test_the_weekly_slot_sends_the_oldest_ready_issue_once(make_app, redis_client):
    now = utcnow()
    weekday = now.strftime("%A").lower()
    slot_time = (now - timedelta(minutes=5)).strftime("%H:%M")
    if (now - timedelta(minutes=5)).date() != now.date():
        return  # a few minutes after midnight UTC the slot would be yesterday's; nothing to test
    app = make_app(WEEKLY_SLOT=f"every {weekday} at {slot_time} in UTC", SLOT_GRACE="3600")
    with app.app_context():
        truncate_all()
        db.session.add(Subscriber(email="s@example.com", status=SubscriberStatus.CONFIRMED))
        db.session.commit()
        assert "started []" in jobs.scheduler_tick()  # no ready issue: nothing
        old = create_issue("Old", "x")
        new = create_issue("New", "y")
        ids = old.id, new.id
        for issue_id in ids:
            mark_ready(issue_id, settings().weekly_slot)
        # Both were ready "before" the slot.
        db.session.execute(
            Issue.__table__.update().values(updated_at=datetime(2000, 1, 1, tzinfo=UTC))
        )
        db.session.commit()
        assert f"started [{ids[0]}]" in jobs.scheduler_tick()
        assert "started []" in jobs.scheduler_tick()  # never twice for one slot
        statuses = [db.session.get(Issue, i).status.value for i in ids]
        assert statuses == ["sending", "ready"]
        db.session.rollback()


def test_a_slot_or_schedule_with_nobody_confirmed_sends_nothing(make_app, redis_client):
    now = utcnow()
    slot = now - timedelta(minutes=5)
    if slot.date() != now.date():
        return  # a few minutes after midnight UTC the slot would be yesterday's
    app = make_app(WEEKLY_SLOT=f"every {now:%A} at {slot:%H:%M} in UTC", SLOT_GRACE="3600")
    with app.app_context():
        truncate_all()
        db.session.add(Subscriber(email="p@example.com", status=SubscriberStatus.PENDING))
        db.session.commit()
        ready = create_issue("Ready", "x").id
        mark_ready(ready, settings().weekly_slot)
        later = create_issue("Scheduled", "y").id
        send_issue(later, at=now + timedelta(hours=1))
        db.session.execute(  # ready before the slot; the scheduled time has come
            Issue.__table__.update().values(
                updated_at=datetime(2000, 1, 1, tzinfo=UTC), scheduled_at=now - timedelta(minutes=1)
            )
        )
        db.session.commit()

        assert "started []" in jobs.scheduler_tick()
        db.session.expire_all()
        ready_issue, scheduled = db.session.get(Issue, ready), db.session.get(Issue, later)
        assert ready_issue.status.value == "ready" and ready_issue.slot_at is None
        assert scheduled.status.value == "draft" and scheduled.scheduled_at is None
        assert "no confirmed subscribers" in scheduled.pause_reason
        assert db.session.query(Delivery).count() == 0
        assert "started []" in jobs.scheduler_tick()  # the draft is not retried every tick

        # Someone confirms while the slot's grace lasts: the ready issue goes out after all.
        db.session.execute(Subscriber.__table__.update().values(status=SubscriberStatus.CONFIRMED))
        db.session.commit()
        assert f"started [{ready}]" in jobs.scheduler_tick()
        db.session.expire_all()
        assert db.session.get(Issue, ready).status.value == "sending"
        assert db.session.get(Issue, later).status.value == "draft"
        db.session.rollback()


def test_issues_list_prints_one_issue_a_line_newest_first_and_filters(app):
    made = [create_issue(f"Tip {n}", "body") for n in range(3)]
    mark_ready(made[0].id, settings().weekly_slot)
    runner = app.test_cli_runner()
    listed = runner.invoke(args=["issues", "list"])
    assert listed.exit_code == 0, listed.output
    assert listed.output.splitlines() == [
        f"{made[2].id}\tdraft\tTip 2",
        f"{made[1].id}\tdraft\tTip 1",
        f"{made[0].id}\tready\tTip 0",
    ]
    ready = runner.invoke(args=["issues", "list", "--status", "ready"])
    assert ready.exit_code == 0 and ready.output == f"{made[0].id}\tready\tTip 0\n"
    assert runner.invoke(args=["issues", "list", "--status", "sent"]).output == ""
    wrong = runner.invoke(args=["issues", "list", "--status", "bogus"])
    assert wrong.exit_code != 0 and "draft" in wrong.output


def test_status_names_the_segment_after_the_counts(app, make_subscriber, run_jobs, inbox):
    from newsletter.subscribers.tags import add_tags

    for email, tags in (("g7@example.com", ["Group 7"]), ("g8@example.com", ["group 8"])):
        sub = make_subscriber(email)
        add_tags(db.session(), sub.id, tags, by="test")
    make_subscriber("other@example.com")
    db.session.commit()
    everyone = create_issue("For all", "Hello.")
    groups = create_issue("For groups", "Hello groups.")
    runner = app.test_cli_runner()
    sent = runner.invoke(
        args=["issues", "send", str(groups.id), "--tag", "group 8", "--tag", "group 7"]
    )
    assert sent.exit_code == 0, sent.output
    run_jobs()
    inbox.wait_for(2)
    lines = runner.invoke(args=["issues", "status", str(groups.id)]).output.splitlines()
    assert lines[:5] == ["state sent", "queued 0", "sent 2", "failed 0", "skipped 0"]
    assert lines[-1] == "segment Group 7, group 8"
    plain = runner.invoke(args=["issues", "status", str(everyone.id)]).output
    assert plain.startswith("state draft\n") and "segment" not in plain
