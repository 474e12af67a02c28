"""A domain's ceiling on confirmation mails delays a reader's mail, never drops it.

A stranger who signs up hundreds of made-up addresses at one domain must not silence the real
people there: past the ceiling a confirmation is owed for the first window with room, the
check-inbox page (and the API's answer) says when, and the reconciler sends it then. Large
mailbox providers have a ceiling of their own, and concurrent sign-ups are each counted once.
"""

from __future__ import annotations

import re
import threading
import time
from datetime import datetime, timedelta

import sqlalchemy as sa
from flask import g

from newsletter.extensions import db
from newsletter.models import ConfirmLimit, Subscriber, utcnow
from newsletter.subscribers.limits import DOMAIN_CONFIRMATIONS, DOMAIN_WINDOW, confirm_quota
from newsletter.subscribers.signup import subscribe as subscribe_domain
from newsletter.tasks.mail import reconcile_mail
from tests.helpers import override_settings
from tests.helpers.readers import link_to, outcome, post_form, subscribe, subscriber

LATER = re.compile(r"may take up to (\d+) minutes")


def browser(app, address: str):
    client = app.test_client()
    client.environ_base["REMOTE_ADDR"] = address
    g.pop("csrf_token", None)  # a new browser must not be handed another one's CSRF token
    return client


def flood(domain: str, count: int, at: datetime | None = None) -> None:
    """Sign up made-up addresses at ``domain``, as the web form and the API do."""
    for n in range(count):
        subscribe_domain(db.session, f"made.up.{n}@{domain}", now=at)
    db.session.commit()


def _within_one_window(seconds_needed: float = 60.0) -> None:
    """Start the flood early in a domain window: one that straddles the window's end (they
    are aligned to the clock) would find room in the next one, and nothing would be owed."""
    left = DOMAIN_WINDOW - time.time() % DOMAIN_WINDOW
    if left < seconds_needed:
        time.sleep(left + 0.5)


def test_a_stranger_floods_a_domain_and_a_real_reader_still_gets_the_mail(app, run_jobs, inbox):
    override_settings(app, subscribe_rate_limit=(1000, 600), reconcile_interval=1.0)
    _within_one_window()
    stranger = browser(app, "203.0.113.66")
    answers = {outcome(post_form(stranger, f"made.up.{n}@company.example")) for n in range(205)}
    assert answers == {"accepted"}
    page = subscribe(browser(app, "198.51.100.7"), "real.person@company.example").text
    # The page says the mail is on its way, and within how long at most.
    assert "Check your inbox" in page
    minutes = int(LATER.search(page).group(1))
    assert 1 <= minutes <= 11
    assert run_jobs() == DOMAIN_CONFIRMATIONS  # the window's share went at once
    inbox.wait_for(DOMAIN_CONFIRMATIONS)
    owed = subscriber("real.person@company.example")
    assert owed.confirm_due_at is not None and owed.confirm_due_at > utcnow()
    assert owed.confirm_due_at <= utcnow() + timedelta(minutes=minutes)
    # Not yet due: the reconciler leaves it be, and nothing more is mailed.
    reconcile_mail()
    assert run_jobs() == 0
    assert "real.person@company.example" not in {m["To"] for m in inbox.messages}
    # Its time comes (moved here instead of waiting ten minutes): the mail goes.
    db.session.execute(
        sa.update(Subscriber)
        .where(Subscriber.confirm_due_at > utcnow())
        .values(confirm_due_at=utcnow() - timedelta(seconds=5))
    )
    db.session.commit()
    assert reconcile_mail() == 6  # the real person and the stranger's five past the ceiling
    assert run_jobs() == 6
    mails = {m["To"]: m for m in inbox.wait_for(DOMAIN_CONFIRMATIONS + 6)}
    mail = mails["real.person@company.example"]
    welcome = browser(app, "198.51.100.8").post(link_to(mail, "/confirm/"), follow_redirects=True)
    assert welcome.status_code == 200
    assert subscriber("real.person@company.example").status.value == "confirmed"


def test_a_flood_at_gmail_does_not_hold_back_a_real_gmail_reader(app, run_jobs, inbox):
    _within_one_window(15.0)
    flood("gmail.com", DOMAIN_CONFIRMATIONS + 20)
    inbox.clear()
    page = subscribe(browser(app, "198.51.100.9"), "real.reader@gmail.com").text
    assert "Check your inbox" in page and not LATER.search(page)
    run_jobs()
    assert "real.reader@gmail.com" in {m["To"] for m in inbox.wait_for(1)}


def test_the_api_answers_202_and_says_when_the_mail_goes(app, client, make_subscriber):
    plain = client.post("/api/v1/subscribe", json={"email": "ann@quiet.example"})
    assert plain.status_code == 202
    assert plain.json["deferred"] is False and plain.json["mail_at"] is None
    _within_one_window(15.0)
    flood("busy.example", DOMAIN_CONFIRMATIONS)
    make_subscriber("known@busy.example")
    new = client.post("/api/v1/subscribe", json={"email": "new@busy.example"})
    known = client.post("/api/v1/subscribe", json={"email": "known@busy.example"})
    assert new.status_code == known.status_code == 202
    assert new.json == known.json  # the answer names nobody
    assert new.json["deferred"] is True
    mail_at = datetime.fromisoformat(new.json["mail_at"])
    assert mail_at > utcnow() and mail_at == subscriber("new@busy.example").confirm_due_at
    assert "will go out" in new.json["message"]


def test_a_workshop_signing_up_at_once_is_each_counted_and_mailed(app, run_jobs, inbox):
    people = [f"person{n}@workshop.example" for n in range(45)]
    barrier = threading.Barrier(len(people))
    answers: dict[str, str] = {}

    def sign_up(email: str) -> None:
        client = app.test_client()
        client.environ_base["REMOTE_ADDR"] = "192.0.2.45"  # one room, one address
        with app.app_context():
            barrier.wait()
            answers[email] = outcome(post_form(client, email))

    quota = confirm_quota(people[0], utcnow())
    threads = [threading.Thread(target=sign_up, args=(e,)) for e in people]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert set(answers.values()) == {"accepted"} and len(answers) == len(people)
    assert run_jobs() == len(people)
    assert sorted(m["To"] for m in inbox.wait_for(len(people))) == sorted(people)
    used = db.session.scalar(sa.select(ConfirmLimit.count).where(ConfirmLimit.key == quota.domain))
    db.session.commit()
    if confirm_quota(people[0], utcnow()).first_slot == quota.first_slot:  # one window
        assert used == quota.first_slot + len(people)  # each counted once
