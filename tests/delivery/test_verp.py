"""VERP: with BOUNCE_ADDRESS each copy leaves from its own signed address, read back exactly."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from newsletter.extensions import db
from newsletter.mail.verp import read_tag, verp_address
from newsletter.models import Delivery, Subscriber
from tests.delivery.conftest import FAST_RETRIES
from tests.helpers import truncate_all
from tests.helpers.sending import queue_issue

SECRET = b"test-secret-key-that-is-long-enough-for-production-use"


@pytest.fixture
def verp_app(make_app, sink):
    app = make_app(SMTP_PORT=str(sink.port), BOUNCE_ADDRESS="bounces@example.org", **FAST_RETRIES)
    with app.app_context():
        truncate_all()
        yield app


def test_each_copy_goes_out_from_its_own_tagged_address(verp_app, add_reader, run_jobs, sink):
    issue_id, _people = queue_issue(3, add_reader)
    run_jobs()
    ids = dict(
        db.session.execute(
            sa.select(Subscriber.email, Delivery.id)
            .join(Delivery, Delivery.subscriber_id == Subscriber.id)
            .where(Delivery.issue_id == issue_id)
        ).all()
    )
    senders = {a.rcpt: a.mail_from for a in sink.accepted}
    assert len(set(senders.values())) == 3
    for email, sender in senders.items():
        assert sender.startswith("bounces+d") and sender.endswith("@example.org")
        assert read_tag(sender, "bounces@example.org", [SECRET]) == ids[email]
    # The From header a reader sees is unchanged: only the envelope names the copy.
    assert all(b"From: Tip of the Week <tips@example.org>" in a.raw for a in sink.accepted)


def test_without_bounce_address_copies_leave_from_mail_from(fault_app, add_reader, run_jobs, sink):
    queue_issue(2, add_reader)
    run_jobs()
    assert {a.mail_from for a in sink.accepted} == {"tips@example.org"}


@pytest.mark.parametrize(
    "address",
    [
        "bounces+d12-0000000000@example.org",  # forged MAC
        "bounces+d13-{mac}@example.org",  # the MAC of another copy
        "bounces+d12-{mac}@example.com",  # another domain
        "other+d12-{mac}@example.org",  # another mailbox
        "bounces@example.org",  # no tag
        "bounces+x12-{mac}@example.org",
    ],
)
def test_a_forged_or_foreign_tag_names_no_copy(address):
    mac = verp_address("bounces@example.org", 12, SECRET).split("-")[1].split("@")[0]
    assert read_tag(address.format(mac=mac), "bounces@example.org", [SECRET]) is None


def test_a_tag_signed_with_a_retired_key_is_still_read():
    old = verp_address("bounces@example.org", 77, b"old key")
    assert read_tag(old, "bounces@example.org", [SECRET]) is None
    assert read_tag(old, "BOUNCES@example.org", [SECRET, b"old key"]) == 77
    assert read_tag(f"<{old.upper()}>", "bounces@example.org", [b"old key"]) == 77
