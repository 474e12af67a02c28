"""What each kind of refusal does to a send and its readers, with a real worker and sink.

The issue's finding: any 5xx marked the reader bounced, so a relay answering "550 5.4.5 Daily
sending quota exceeded" lost real readers. Now only an answer about the reader's address
bounces them; the relay refusing us pauses the send with every copy still queued.
"""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from newsletter.extensions import db, settings
from newsletter.issues.actions import create_issue, issue_status
from newsletter.models import Bounce, BounceKind, Issue, Subscriber, SubscriberStatus, utcnow
from newsletter.tasks.dispatch import resume_issue, send_issue
from newsletter.tasks.tick import reconcile
from tests.helpers.sending import deliveries, queue_issue


def _statuses(people):
    db.session.expire_all()
    return [db.session.get(Subscriber, p.id).status for p in people]


@pytest.mark.parametrize(
    "answer", ["550 5.4.5 Daily sending quota exceeded", "554 5.7.1 client host blocked"]
)
def test_the_relay_refusing_us_pauses_and_bounces_nobody(
    fault_app, add_reader, run_jobs, sink, answer
):
    sink.mail_answer = answer
    issue_id, people = queue_issue(5, add_reader)
    run_jobs()
    assert _statuses(people) == [SubscriberStatus.CONFIRMED] * 5
    found = issue_status(issue_id)
    assert found["status"] == "paused"
    assert answer in found["pause_reason"]
    assert {status for status, _, _ in deliveries(issue_id).values()} == {"queued"}
    assert all(attempts == 0 for _, attempts, _ in deliveries(issue_id).values())
    assert db.session.scalar(sa.select(sa.func.count()).select_from(Bounce)) == 0
    # The operator fixes the relay and resumes: every reader gets the tip, once.
    sink.mail_answer = None
    resume_issue(issue_id)
    run_jobs()
    assert issue_status(issue_id)["status"] == "sent"
    assert sorted(a.rcpt for a in sink.accepted) == sorted(p.email for p in people)


def test_spam_refusal_after_data_pauses_without_bouncing(fault_app, add_reader, run_jobs, sink):
    sink.end_answer = "554 5.7.1 message refused as spam"
    issue_id, people = queue_issue(3, add_reader)
    run_jobs()
    found = issue_status(issue_id)
    assert found["status"] == "paused" and "5.7.1 message refused as spam" in found["pause_reason"]
    assert _statuses(people) == [SubscriberStatus.CONFIRMED] * 3


def test_each_rcpt_answer_does_what_it_says(fault_app, add_reader, run_jobs, sink):
    sink.script("f0@example.com", "550 5.1.1 no such user")
    sink.script("f1@example.com", "552 5.2.2 mailbox full")
    sink.script("f2@example.com", "550 5.4.1 Recipient address rejected: Access denied")
    sink.script(
        "f3@example.com", "end 554 delivery error: dd This user doesn't have a yahoo.com account"
    )
    issue_id, people = queue_issue(5, add_reader)
    run_jobs()
    rows = deliveries(issue_id)
    assert [rows[f"f{i}@example.com"][0] for i in range(5)] == ["failed"] * 4 + ["sent"]
    assert _statuses(people) == [
        SubscriberStatus.BOUNCED,  # the address is bad
        SubscriberStatus.CONFIRMED,  # full: one soft bounce counted
        SubscriberStatus.CONFIRMED,  # refused for no clear reason: not their fault
        SubscriberStatus.BOUNCED,  # Yahoo says so in words, after DATA
        SubscriberStatus.CONFIRMED,
    ]
    kinds = dict(db.session.execute(sa.select(Bounce.subscriber_id, Bounce.kind)).all())
    assert kinds == {
        people[0].id: BounceKind.HARD,
        people[1].id: BounceKind.SOFT,
        people[2].id: BounceKind.BLOCKED,
        people[3].id: BounceKind.HARD,
    }
    # none of these per-reader answers stalled the send
    assert issue_status(issue_id)["status"] == "sent"


def test_a_policy_refusal_at_rcpt_keeps_the_copy_and_pauses(fault_app, add_reader, run_jobs, sink):
    answer = "554 5.7.1 Service unavailable; client host blocked"
    sink.script("f1@example.com", answer)
    issue_id, people = queue_issue(3, add_reader)
    run_jobs()
    found = issue_status(issue_id)
    assert found["status"] == "paused" and answer in found["pause_reason"]
    assert deliveries(issue_id)["f1@example.com"][0] == "queued"
    assert _statuses(people) == [SubscriberStatus.CONFIRMED] * 3
    assert db.session.scalar(sa.select(sa.func.count()).select_from(Bounce)) == 0
    # The block is lifted; the editor resumes: that reader gets the tip too.
    resume_issue(issue_id)
    run_jobs()
    assert issue_status(issue_id)["status"] == "sent"
    assert sorted(a.rcpt for a in sink.accepted) == sorted(p.email for p in people)


def test_a_copy_that_pauses_the_send_twice_is_failed_not_paused_again(
    fault_app, add_reader, run_jobs, sink
):
    answer = "550 5.7.1 our policy refuses mail from your domain"
    sink.script("f0@example.com", answer, answer)
    issue_id, people = queue_issue(3, add_reader)
    run_jobs()
    assert issue_status(issue_id)["status"] == "paused"
    resume_issue(issue_id)
    run_jobs()
    assert issue_status(issue_id)["status"] == "sent"
    rows = deliveries(issue_id)
    assert [rows[f"f{i}@example.com"][0] for i in range(3)] == ["failed", "sent", "sent"]
    assert _statuses(people) == [SubscriberStatus.CONFIRMED] * 3  # never the reader's fault
    bounce = db.session.scalar(sa.select(Bounce))
    assert bounce.kind is BounceKind.BLOCKED and "refused again after a pause" in bounce.diagnostic


@pytest.mark.parametrize(
    "answer",
    [
        "421 4.7.0 [TSS04] Messages temporarily deferred due to unexpected volume",
        "451 4.7.650 The mail server has been temporarily rate limited due to IP reputation",
    ],
)
def test_throttling_through_every_retry_bounces_nobody(
    fault_app, add_reader, run_jobs, sink, answer
):
    attempts = settings(fault_app).send_max_attempts
    sink.script("f0@example.com", *[answer] * attempts)
    issue_id, people = queue_issue(1, add_reader)
    while issue_status(issue_id)["status"] == "sending":
        run_jobs()
    assert deliveries(issue_id)["f0@example.com"][:2] == ("failed", attempts)
    assert _statuses(people) == [SubscriberStatus.CONFIRMED]
    assert db.session.scalar(sa.select(sa.func.count()).select_from(Bounce)) == 0


def test_soft_bounces_in_a_row_over_issues_bounce_the_address(
    fault_app, add_reader, run_jobs, sink
):
    full = add_reader("full@example.com")
    recovers = add_reader("recovers@example.com")
    limit = settings(fault_app).bounce_soft_limit
    assert limit == 3
    for week in range(limit):
        sink.script("full@example.com", "552 5.2.2 mailbox full")
        if week != 1:  # one issue gets through: the streak starts over
            sink.script("recovers@example.com", "552 5.2.2 mailbox full")
        issue = create_issue(f"Week {week}", "Body")
        send_issue(issue.id)
        run_jobs()
        expected = SubscriberStatus.BOUNCED if week == limit - 1 else SubscriberStatus.CONFIRMED
        assert _statuses([full, recovers]) == [expected, SubscriberStatus.CONFIRMED]


def test_a_temporary_answer_after_every_retry_is_a_soft_bounce(
    fault_app, add_reader, run_jobs, sink
):
    attempts = settings(fault_app).send_max_attempts
    sink.script("f0@example.com", *["451 4.4.1 no answer from host"] * attempts)
    issue_id, people = queue_issue(1, add_reader)
    while issue_status(issue_id)["status"] == "sending":
        run_jobs()
    assert deliveries(issue_id)["f0@example.com"][:2] == ("failed", attempts)
    assert _statuses(people) == [SubscriberStatus.CONFIRMED]
    bounce = db.session.scalar(sa.select(Bounce))
    assert bounce.kind is BounceKind.SOFT and "after 4 attempts" in bounce.diagnostic


def test_a_relay_down_for_a_long_while_fails_nobody_and_bounces_nobody(
    fault_app, add_reader, run_jobs, sink
):
    sink.mail_answer = "451 4.3.0 try again later"
    issue_id, people = queue_issue(2, add_reader)
    # Many more tries than SEND_MAX_ATTEMPTS: the relay's "not now" is nobody's try.
    for _ in range(4):
        run_jobs()
        found = issue_status(issue_id)
        assert found["status"] == "sending" and found["relay_waiting"], found
        db.session.execute(sa.update(Issue).values(relay_retry_at=utcnow()))  # due again now
        db.session.commit()
        reconcile()
    assert deliveries(issue_id) == {p.email: ("queued", 0, "") for p in people}
    assert _statuses(people) == [SubscriberStatus.CONFIRMED] * 2
    assert db.session.scalar(sa.select(sa.func.count()).select_from(Bounce)) == 0
    sink.mail_answer = None
    run_jobs()
    assert issue_status(issue_id)["status"] == "sent"
    assert all(len(sink.to(p.email)) == 1 for p in people)
