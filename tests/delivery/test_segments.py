"""Sends to a segment: the confirmed readers with any of the chosen tags, and nobody else.

The CLI, the API, the editor's forms and a scheduled start all store the segment on the issue
and snapshot it; real worker processes keep exactly-once within it through a kill -9.
"""

from __future__ import annotations

import collections
import signal
from datetime import timedelta
from typing import Any

import pytest
import sqlalchemy as sa

from newsletter.extensions import db
from newsletter.extensions import settings as app_settings
from newsletter.issues.actions import create_issue
from newsletter.issues.due import start_due
from newsletter.models import Delivery, Issue, IssueStatus, Subscriber, SubscriberStatus, utcnow
from newsletter.subscribers.tags import add_tags
from tests.helpers.editors import bearer, editor_client, post_form

S = SubscriberStatus


def _people(app: Any) -> dict[str, int]:
    """Seven readers: groups 7 and 8, one in both, one untagged, and three not confirmed."""
    people = {
        "g7@example.com": (S.CONFIRMED, ["group 7"]),
        "g8@example.com": (S.CONFIRMED, ["group 8"]),
        "both@example.com": (S.CONFIRMED, ["group 7", "group 8"]),
        "none@example.com": (S.CONFIRMED, []),
        "g9@example.com": (S.CONFIRMED, ["group 9"]),
        "pending7@example.com": (S.PENDING, ["group 7"]),
        "left7@example.com": (S.UNSUBSCRIBED, ["group 7"]),
        "left10@example.com": (S.UNSUBSCRIBED, ["group 10"]),
    }
    ids = {}
    for email, (status, tags) in people.items():
        sub = Subscriber(email=email, name="", status=status)
        db.session.add(sub)
        db.session.flush()
        add_tags(db.session(), sub.id, tags, by="test")
        ids[email] = sub.id
    db.session.commit()
    return ids


def _recipients(issue_id: int) -> set[str]:
    rows = db.session.scalars(
        sa.select(Subscriber.email)
        .join(Delivery, Delivery.subscriber_id == Subscriber.id)
        .where(Delivery.issue_id == issue_id)
    )
    found = set(rows)
    db.session.commit()
    return found


def test_the_cli_sends_to_the_readers_with_any_of_the_tags(app, run_jobs, inbox):
    _people(app)
    issue = create_issue("For groups 7 and 8", "Hello groups.")
    runner = app.test_cli_runner()
    done = runner.invoke(
        args=["issues", "send", str(issue.id), "--tag", "Group 7", "--tag", "group 8"]
    )
    assert done.exit_code == 0, done.output
    assert "queued for 3 subscribers" in done.stdout and "Segment: group 7, group 8" in done.stdout
    run_jobs()
    got = sorted(m["To"] for m in inbox.wait_for(3))
    assert got == ["both@example.com", "g7@example.com", "g8@example.com"]
    db.session.expire_all()
    assert [t.name for t in db.session.get(Issue, issue.id).segment] == ["group 7", "group 8"]


def test_an_unknown_tag_or_an_empty_segment_is_refused_and_nothing_is_queued(app):
    _people(app)
    issue = create_issue("Nobody", "Hello.")
    runner = app.test_cli_runner()
    unknown = runner.invoke(args=["issues", "send", str(issue.id), "--tag", "group 77"])
    assert unknown.exit_code == 1
    assert unknown.stderr.strip() == (
        "Error: No tag named group 77: check the spelling or tag someone first."
    )
    empty = runner.invoke(args=["issues", "send", str(issue.id), "--tag", "group 10"])
    assert empty.exit_code == 1 and len(empty.stderr.strip().splitlines()) == 1
    assert "Nobody confirmed carries the tag group 10; nothing was queued." in empty.stderr
    db.session.expire_all()
    assert db.session.get(Issue, issue.id).status is IssueStatus.DRAFT
    assert db.session.get(Issue, issue.id).segment == []
    assert _recipients(issue.id) == set()


def test_a_scheduled_send_keeps_its_segment_and_without_tags_everyone_gets_it(app):
    _people(app)
    later = create_issue("Later", "Hello.")
    runner = app.test_cli_runner()
    at = (utcnow() + timedelta(hours=1)).isoformat()
    done = runner.invoke(args=["issues", "send", str(later.id), "--at", at, "--tag", "group 9"])
    assert done.exit_code == 0, done.output
    started = start_due(db.session(), utcnow() + timedelta(hours=2), app_settings(app))
    assert [i for i, _ in started] == [later.id]
    assert _recipients(later.id) == {"g9@example.com"}
    everyone = create_issue("Everyone", "Hello all.")
    runner.invoke(args=["issues", "send", str(everyone.id)])
    assert _recipients(everyone.id) == {
        "g7@example.com",
        "g8@example.com",
        "both@example.com",
        "none@example.com",
        "g9@example.com",
    }


def test_the_api_sends_to_a_segment_and_says_so(app):
    _people(app)
    issue = create_issue("API", "Hello.")
    client, auth = app.test_client(), bearer(app)
    unknown = client.post(f"/api/v1/issues/{issue.id}/send", json={"tags": ["nope"]}, headers=auth)
    assert unknown.status_code == 404 and "No tag named nope" in unknown.text
    sent = client.post(f"/api/v1/issues/{issue.id}/send", json={"tags": ["group 8"]}, headers=auth)
    assert sent.status_code == 202, sent.text
    body = sent.get_json()
    assert body["issue"]["segment"] == ["group 8"] and body["issue"]["audience"] == 2
    assert _recipients(issue.id) == {"g8@example.com", "both@example.com"}


def test_the_editor_chooses_tags_sees_the_count_and_sends(app):
    _people(app)
    issue = create_issue("Editor", "Hello.")
    client = editor_client(app)
    page = f"/editor/issues/{issue.id}"
    shown = client.get(page).text
    assert 'value="group 7"' in shown and "<strong>5</strong> confirmed readers" in shown
    count = client.get(f"{page}/audience.json?tag=group+7&tag=group+9").get_json()
    assert count == {"count": 3}
    assert client.get(f"{page}/audience.json?tag=zzz").status_code == 404
    post_form(client, page, f"{page}/segment", tag="group 7")
    shown = client.get(page).text
    assert "This issue goes to the readers tagged group 7: 2 now." in shown
    assert "Send now to 2 subscribers" in shown
    post_form(client, page, f"{page}/send")
    assert _recipients(issue.id) == {"g7@example.com", "both@example.com"}
    assert "Went to the confirmed readers tagged" in client.get(page).text


# --- real worker processes ------------------------------------------------------------------


@pytest.mark.slow
def test_a_segment_goes_out_exactly_once_through_a_kill_9_and_to_nobody_else(world: Any):
    emails = world.subscribers(1200)
    ids = {e: i for e, i in db.session.execute(sa.select(Subscriber.email, Subscriber.id))}
    inside = emails[::2]  # every other reader is in group 7
    for email in inside:
        add_tags(db.session(), ids[email], ["group 7"], by="test")
    db.session.commit()
    a, _b = world.worker(), world.worker()
    issue = create_issue("Group 7 only", "Body of the tip.")
    world.issue_id = issue.id
    done = world.app.test_cli_runner().invoke(
        args=["issues", "send", str(issue.id), "--tag", "group 7"]
    )
    assert "queued for 600" in done.stdout, done.output
    world.wait_until(lambda: len(world.sink.accepted) >= 150)
    a.send_signal(signal.SIGKILL)
    a.wait()
    world.worker()
    world.wait_until(world.finished)
    copies = collections.Counter(x.rcpt for x in world.sink.accepted)
    assert set(copies) == set(inside)  # everyone in the segment, nobody outside it
    assert sum(n - 1 for n in copies.values()) <= 1  # the message in flight, at most
    found = world.status()
    assert found["audience"] == 600 == found["sent"]


def test_the_stats_say_which_segment_an_issue_went_to(app, run_jobs):
    _people(app)
    issue = create_issue("Stats", "Hello.")
    app.test_cli_runner().invoke(args=["issues", "send", str(issue.id), "--tag", "group 9"])
    run_jobs()
    page = editor_client(app).get("/editor/stats").text
    assert '#1 Stats<br><small class="muted segment">to the readers tagged group 9' in page
