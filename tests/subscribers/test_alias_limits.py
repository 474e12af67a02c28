"""Floods of confirmation mails: limits per mailbox (all aliases of one inbox), per domain,
and per client, with IPv6 clients counted by their /64."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa
from flask import g

from newsletter.extensions import db
from newsletter.models import ConfirmLimit, Subscriber
from newsletter.subscribers.limits import DOMAIN_CONFIRMATIONS, client_key
from newsletter.subscribers.signup import subscribe as subscribe_domain
from newsletter.subscribers.state import erase
from newsletter.subscribers.validate import mailbox_domain, mailbox_key
from tests.helpers.readers import outcome, post_form, subscribe, subscriber, without_address

# The start of a ten-minute window, so that a test's minutes all fall in one.
T0 = datetime(2030, 1, 7, 8, 0, tzinfo=UTC)


def sign_up(app, address: str, email: str):
    """Sign up through the form from a browser of its own at client ``address``."""
    client = app.test_client()
    client.environ_base["REMOTE_ADDR"] = address
    # The test's app context is shared by every request, and Flask-WTF caches the CSRF token
    # on g: a new browser must not be handed another one's.
    g.pop("csrf_token", None)
    return subscribe(client, email)


@pytest.mark.parametrize(
    ("address", "mailbox"),
    [
        ("victim+1@example.com", "victim@example.com"),
        ("victim+news+more@example.com", "victim@example.com"),
        ("vic.tim@example.com", "vic.tim@example.com"),  # dots count outside Gmail
        ("j.o.e+x@gmail.com", "joe@gmail.com"),
        ("JOE@googlemail.com".lower(), "joe@gmail.com"),
        ("+only@example.com", "+only@example.com"),
        ("jörg+1@bücher.example", "jörg@bücher.example"),
    ],
)
def test_every_alias_of_an_inbox_has_its_key(address, mailbox):
    assert mailbox_key(address) == mailbox
    assert mailbox_domain(address) == mailbox.rpartition("@")[2]


def test_aliases_of_one_inbox_get_one_confirmation_between_them(app, run_jobs, inbox):
    aliases = [
        "victim+1@example.com",
        "victim+2@example.com",
        "Victim+news@Example.com",
        "victim@example.com",
        "j.o.e@gmail.com",
        "joe+x@googlemail.com",
        "JOE@gmail.com",
        "jo.e+y@gmail.com",
    ]
    # Each from a client address of its own: it is not the per-client limit that holds.
    answers = {
        without_address(sign_up(app, f"198.51.100.{n + 1}", alias).text, alias)
        for n, alias in enumerate(aliases)
    }
    answers.add(
        without_address(
            sign_up(app, "198.51.100.99", "someone@gmail.com").text, "someone@gmail.com"
        )
    )
    assert len(answers) == 1  # the same page whether a mail went or not
    stored = db.session.scalar(sa.select(sa.func.count()).select_from(Subscriber))
    db.session.commit()
    assert stored == len(aliases) + 1  # each is a new address, pending
    assert run_jobs() == 3
    assert [m["To"] for m in inbox.wait_for(3)] == [
        "victim+1@example.com",
        "j.o.e@gmail.com",
        "someone@gmail.com",
    ]
    assert subscriber("victim+2@example.com").confirm_due_at is None


def test_one_inbox_gets_one_mail_per_ten_minutes_and_three_a_day_across_aliases(app):
    def ask(alias: str, at: datetime) -> bool:
        result = subscribe_domain(db.session, alias, now=at)
        db.session.commit()
        return result.send_confirmation

    assert ask("ann+1@example.com", T0) is True
    assert ask("ann+2@example.com", T0 + timedelta(minutes=1)) is False
    assert ask("ann+1@example.com", T0 + timedelta(minutes=9)) is False
    assert ask("ann+3@example.com", T0 + timedelta(minutes=10)) is True
    assert ask("ann@example.com", T0 + timedelta(minutes=25)) is True
    assert ask("ann+4@example.com", T0 + timedelta(hours=3)) is False  # the fourth of the day
    assert ask("ann+5@example.com", T0 + timedelta(days=1)) is True  # a new day
    assert ask("bob@example.com", T0 + timedelta(days=1, seconds=1)) is True  # someone else


def test_a_room_gets_its_mails_at_once_and_a_flood_at_one_domain_waits_its_turn(app):
    def ask(email: str, at: datetime) -> datetime | None:
        result = subscribe_domain(db.session, email, now=at)
        db.session.commit()
        assert result.send_confirmation  # the domain's ceiling never drops a mail
        assert result.mail_at == result.due_at
        return result.due_at

    # A workshop: 45 people at one company within a minute, each mailed at once.
    for n in range(45):
        at = T0 + timedelta(seconds=n)
        assert ask(f"person{n}@company.example", at) == at
    # A flood: the window's ceiling mails at once, the rest is owed in the next windows.
    flood_at = T0 + timedelta(minutes=1)
    dues = [
        ask(f"flood{n}@company.example", flood_at + timedelta(milliseconds=n))
        for n in range(DOMAIN_CONFIRMATIONS)
    ]
    assert sum(due == flood_at + timedelta(milliseconds=n) for n, due in enumerate(dues)) == (
        DOMAIN_CONFIRMATIONS - 45
    )
    assert dues[-45:] == [T0 + timedelta(minutes=10)] * 45
    # Someone real at that domain gets the mail when the next window opens, never not at all.
    assert ask("late@company.example", T0 + timedelta(minutes=9)) == T0 + timedelta(minutes=10)
    owed = subscriber("late@company.example")
    assert owed.status.value == "pending" and owed.confirm_due_at == T0 + timedelta(minutes=10)
    at = T0 + timedelta(minutes=9, seconds=1)
    assert ask("someone@other.example", at) == at  # other domains are not held back
    at = T0 + timedelta(minutes=10)
    assert ask("next@company.example", at) == at  # the next window still has room
    # An inbox mailed just now is owed nothing more, and is told the same time as the others.
    for n in range(DOMAIN_CONFIRMATIONS):
        ask(f"second{n}@company.example", at)
    again = subscribe_domain(db.session, "next+1@company.example", now=at)
    db.session.commit()
    assert not again.send_confirmation
    assert again.mail_at == T0 + timedelta(minutes=20)


def test_large_mailbox_providers_do_not_share_a_companys_ceiling(app):
    for n in range(DOMAIN_CONFIRMATIONS + 50):
        result = subscribe_domain(db.session, f"stranger{n}@gmail.com", now=T0)
        assert result.due_at == T0
    db.session.commit()
    real = subscribe_domain(db.session, "real.reader@gmail.com", now=T0 + timedelta(seconds=5))
    db.session.commit()
    assert real.due_at == T0 + timedelta(seconds=5)


@pytest.mark.parametrize(
    ("address", "counted_as"),
    [
        ("203.0.113.7", "203.0.113.7"),
        ("::ffff:203.0.113.7", "203.0.113.7"),
        ("2001:db8:1:2:3:4:5:6", "2001:db8:1:2::/64"),
        ("2001:DB8:1:2::9", "2001:db8:1:2::/64"),
        ("-", "-"),
    ],
)
def test_a_client_counts_as_its_ipv4_address_or_its_ipv6_64(address, counted_as):
    assert client_key(address) == counted_as


def test_ipv6_clients_share_a_limit_per_64_and_mapped_ipv4_is_ipv4(make_app):
    app = make_app(SUBSCRIBE_RATE_LIMIT="10/600")

    def status(address: str, n: int) -> str:
        client = app.test_client()
        client.environ_base["REMOTE_ADDR"] = address
        with app.app_context():
            return outcome(post_form(client, f"reader{n}@example.com"))

    for n in range(10):
        assert status(f"2001:db8:1:2::{n + 1:x}", n) == "accepted"
    assert status("2001:db8:1:2:ffff:ffff:ffff:ffff", 10) == "proof"  # the same /64
    assert status("2001:db8:1:3::1", 11) == "accepted"  # the neighbouring /64
    for n in range(20, 30):
        assert status("203.0.113.7" if n % 2 else "::ffff:203.0.113.7", n) == "accepted"
    assert status("::ffff:203.0.113.7", 30) == "proof"
    assert status("203.0.113.8", 31) == "accepted"


def test_erasing_someone_drops_their_inbox_counter_too(app):
    subscribe_domain(db.session, "gone@example.com", now=T0)
    db.session.commit()
    assert db.session.scalar(sa.select(sa.func.count()).select_from(ConfirmLimit)) == 2
    assert erase(db.session, "gone@example.com") is True
    db.session.commit()
    # The domain's count stays: it says nothing about anyone.
    assert db.session.scalar(sa.select(sa.func.count()).select_from(ConfirmLimit)) == 1


def test_sign_ups_whose_clocks_read_out_of_order_are_each_counted(app):
    # Web workers read the clock before they get the database: the one that writes second
    # may hold the older reading. Neither may be refused for it.
    readings = [T0 + timedelta(seconds=s) for s in (5, 3, 4, 1, 2)]
    for n, at in enumerate(readings):
        result = subscribe_domain(db.session, f"colleague{n}@company.example", now=at)
        db.session.commit()
        assert result.send_confirmation and result.due_at == at
    assert all(subscriber(f"colleague{n}@company.example").confirm_due_at for n in range(5))
