"""`newsletter bounces list` and `newsletter subscribers reactivate`, after real bounces."""

from __future__ import annotations

import re

import sqlalchemy as sa

from newsletter.extensions import db
from newsletter.models import EventKind, Subscriber, SubscriberEvent, SubscriberStatus
from tests.bounces.conftest import bounce_rows, filled, status_of

LINE = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ\t[^\t]+\t(hard|soft|complaint|refused)\t[^\t]+")


def cli(app, *args, input=None):
    return app.test_cli_runner().invoke(args=list(args), input=input)


def test_list_shows_each_bounce_newest_first_and_filters_by_kind(bounce_app, sent):
    hard, full, complainer, refused = sent(4)
    cli(bounce_app, "bounces", "receive", input=filled("postfix_user_unknown.eml", hard))
    cli(bounce_app, "bounces", "receive", input=filled("mailbox_full.eml", full))
    cli(bounce_app, "bounces", "receive", input=filled("arf_abuse.eml", complainer))
    policy = filled("ses_dsn.eml", refused).replace(b"Status: 5.1.1", b"Status: 5.7.1")
    policy = policy.replace(
        b"550 5.1.1 user unknown", b"554 5.7.1 Message rejected\tby\x1b[31m policy"
    )
    cli(bounce_app, "bounces", "receive", input=policy)
    result = cli(bounce_app, "bounces", "list")
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert all(LINE.fullmatch(line) for line in lines), lines
    assert [line.split("\t")[1:3] for line in lines] == [
        [refused.email, "refused"],
        [complainer.email, "complaint"],
        [full.email, "soft"],
        [hard.email, "hard"],
    ]
    detail = lines[-1].split("\t")[3]
    assert detail.startswith(f"issue {hard.issue_id}, via dsn: 550 5.1.1")
    assert "\x1b" not in result.stdout  # a stranger's escape codes never reach the terminal
    only = cli(bounce_app, "bounces", "list", "--kind", "soft").stdout.splitlines()
    assert [line.split("\t")[1] for line in only] == [full.email]
    assert len(cli(bounce_app, "bounces", "list", "--limit", "2").stdout.splitlines()) == 2
    bad = cli(bounce_app, "bounces", "list", "--kind", "bogus")
    assert bad.exit_code != 0 and "Traceback" not in bad.output


def test_reactivate_undoes_a_bounce_and_keeps_who_and_when(bounce_app, sent, sink):
    (copy,) = sent(1)
    raw = filled("exim_failed.eml", copy)
    cli(bounce_app, "bounces", "receive", input=raw)
    assert status_of(copy.subscriber_id) == "bounced"

    result = cli(bounce_app, "subscribers", "reactivate", copy.email.upper())
    assert result.exit_code == 0, result.output
    assert result.stdout == f"reactivated {copy.email}: confirmed, 1 bounces undone\n"
    assert status_of(copy.subscriber_id) == "confirmed"
    (row,) = bounce_rows()
    assert row.undone_by == "cli" and row.undone_at is not None
    history = db.session.scalars(
        sa.select(SubscriberEvent)
        .where(SubscriberEvent.subscriber_id == copy.subscriber_id)
        .order_by(SubscriberEvent.id)
    ).all()
    assert [(e.kind, e.detail) for e in history[-2:]] == [
        (EventKind.BOUNCED, row.diagnostic[:200]),
        (EventKind.CONFIRMED, "reactivated by cli; 1 bounce undone"),
    ]
    db.session.commit()
    listed = cli(bounce_app, "bounces", "list").stdout
    assert "(undone by cli at " in listed

    # The MTA delivering the same bounce again does not undo the reactivation.
    again = cli(bounce_app, "bounces", "receive", input=raw)
    assert again.stdout.startswith("duplicate:")
    assert status_of(copy.subscriber_id) == "confirmed"
    # And the next issue reaches them again.
    assert [c.email for c in sent()] == [copy.email]


def test_reactivate_refuses_with_one_line_when_there_is_nothing_to_undo(bounce_app, sent):
    (copy,) = sent(1)
    nothing = cli(bounce_app, "subscribers", "reactivate", copy.email)
    assert nothing.exit_code == 1
    assert nothing.stderr.strip().splitlines() == [
        f"Error: {copy.email} is confirmed with no bounce to undo"
    ]
    unknown = cli(bounce_app, "subscribers", "reactivate", "nobody@example.com")
    assert unknown.exit_code == 1 and "no subscriber" in unknown.stderr
    bad = cli(bounce_app, "subscribers", "reactivate", "not an address")
    assert bad.exit_code == 1 and len(bad.stderr.strip().splitlines()) == 1


def test_reactivate_leaves_a_complaint_standing(bounce_app, sent):
    (copy,) = sent(1)
    cli(bounce_app, "bounces", "receive", input=filled("arf_abuse.eml", copy))
    result = cli(bounce_app, "subscribers", "reactivate", copy.email)
    assert result.exit_code == 1
    assert "is unsubscribed with no bounce to undo" in result.stderr
    assert status_of(copy.subscriber_id) == "unsubscribed"
    (row,) = bounce_rows()
    assert row.undone_at is None


def test_an_address_that_bounced_before_confirming_is_not_opted_in_by_reactivate(bounce_app):
    person = Subscriber(email="never@example.com", name="", status=SubscriberStatus.BOUNCED)
    db.session.add(person)
    db.session.commit()
    result = cli(bounce_app, "subscribers", "reactivate", "never@example.com")
    assert result.exit_code == 1
    assert result.stderr.strip().splitlines() == [
        "Error: never@example.com never confirmed; only their own sign-up can bring it back"
    ]
    assert status_of(person.id) == "bounced"
