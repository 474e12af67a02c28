"""Which link opens what on the reader's page: the one in every mail opens the harmless actions;
data, a new address and erasing need a link just mailed to the current address; a change of
address voids the old links, and the unsubscribe link still unsubscribes."""

from __future__ import annotations

import json
from typing import Any

import sqlalchemy as sa
from itsdangerous import Signer

from newsletter.extensions import db
from newsletter.issues.actions import create_issue
from newsletter.models import Subscriber, SubscriberEvent, SubscriberStatus
from newsletter.services import tokens
from newsletter.subscribers.links import LEGACY_MANAGE_SALT, link_stamp
from newsletter.tasks.dispatch import send_issue
from tests.helpers import text_part
from tests.helpers.editors import page_token
from tests.helpers.readers import link_to, subscriber

SENSITIVE = {
    "data": {},
    "address": {"email": "mallory@example.com"},
    "erase": {"email": "ann@example.com"},
}


def _post(client: Any, page: str, action: str, **data: str) -> Any:
    return client.post(action, data={"csrf_token": page_token(client, page), **data})


def _state() -> tuple[Any, ...]:
    db.session.expire_all()
    rows = db.session.execute(
        sa.select(Subscriber.email, Subscriber.new_email, Subscriber.status).order_by(Subscriber.id)
    ).all()
    events = db.session.scalar(sa.select(sa.func.count()).select_from(SubscriberEvent))
    db.session.commit()
    return tuple(rows), events


def _issue_link(run_jobs: Any, inbox: Any, n: int) -> tuple[Any, str]:
    """Send an issue; return the mail of the ``n``-th message and its link to the page."""
    send_issue(create_issue(f"Tip {n}", "Body").id)
    run_jobs()
    mail = inbox.wait_for(n)[n - 1]
    return mail, link_to(mail, "/manage/")


def _ask_for_link(client: Any, page: str, run_jobs: Any, inbox: Any, n: int) -> str:
    """Press "Email me the link" on ``page``; return the link in the mail that comes."""
    answer = _post(client, page, f"{page}/link")
    assert answer.status_code == 303
    shown = client.get(answer.headers["Location"]).get_data(as_text=True)
    assert "We sent a link to your address." in shown
    assert run_jobs() == 1
    mail = inbox.wait_for(n)[n - 1]
    assert "Open it within" not in text_part(mail) and "60 minutes" in text_part(mail)
    return link_to(mail, "/manage/")


def test_an_issues_link_needs_a_freshly_mailed_one_for_data_address_and_erasing(
    app, client, make_subscriber, run_jobs, inbox
):
    sub = make_subscriber("ann@example.com", name="Ann")
    _mail, page = _issue_link(run_jobs, inbox, 1)
    before = _state()
    for action, data in SENSITIVE.items():
        answer = _post(client, page, f"{page}/{action}", **data)
        assert answer.status_code == 403, action
        body = answer.get_data(as_text=True)
        assert "First open the link we email you" in body and "Nothing was changed" in body
        assert answer.mimetype == "text/html"
    assert _state() == before
    assert run_jobs() == 0 and len(inbox.messages) == 1

    # Asked for, the link goes to the reader's current address, and no one else.
    fresh = _ask_for_link(client, page, run_jobs, inbox, 2)
    assert inbox.envelopes[1][1] == ["ann@example.com"]
    assert fresh != page and "ann@" not in fresh
    shown = client.get(fresh).get_data(as_text=True)
    assert "You opened the link we emailed you" in shown
    assert _state() == before  # opening it changes nothing

    download = _post(client, fresh, f"{fresh}/data")
    assert download.status_code == 200 and download.mimetype == "application/json"
    assert json.loads(download.get_data(as_text=True))["profile"]["email"] == "ann@example.com"

    erased = _post(client, fresh, f"{fresh}/erase", email="ann@example.com")
    assert erased.status_code == 200 and "erased" in erased.get_data(as_text=True)
    assert db.session.get(Subscriber, sub.id) is None


def test_an_address_change_voids_the_old_links_but_the_unsubscribe_link_still_unsubscribes(
    app, client, make_subscriber, run_jobs, inbox
):
    make_subscriber("ann@example.com", name="Ann")
    issue_mail, page = _issue_link(run_jobs, inbox, 1)
    unsubscribe = link_to(issue_mail, "/unsubscribe/")
    fresh = _ask_for_link(client, page, run_jobs, inbox, 2)
    answer = _post(client, fresh, f"{fresh}/address", email="ann.new@example.org")
    assert answer.status_code == 200
    run_jobs()
    confirm = link_to(inbox.wait_for(3)[2], "/manage/address/")
    assert _post(client, fresh, confirm).status_code == 200
    assert subscriber("ann.new@example.org") is not None
    run_jobs()  # the notice to the old address

    # Every page link mailed to the old address shows nothing, and offers nothing.
    for old in (page, fresh):
        shown = client.get(old)
        assert shown.status_code == 404
        body = shown.get_data(as_text=True)
        assert "This link no longer works" in body and "ann.new" not in body
        for action in ("name", "pause", "link", *SENSITIVE):
            posted = client.post(f"{old}/{action}", data={"csrf_token": page_token(client, "/")})
            assert posted.status_code == 404, (old, action)
    # The unsubscribe page in the old mails shows neither the address nor a way to the page.
    leave = client.get(unsubscribe).get_data(as_text=True)
    assert "ann.new" not in leave and "/manage/" not in leave
    # Its one-click POST (RFC 8058) unsubscribes as ever.
    done = app.test_client(use_cookies=False).post(
        unsubscribe, data={"List-Unsubscribe": "One-Click"}
    )
    assert done.status_code == 200 and "ann.new" not in done.get_data(as_text=True)
    assert subscriber("ann.new@example.org").status is SubscriberStatus.UNSUBSCRIBED


def test_page_links_mailed_before_they_named_the_address_open_the_harmless_actions_only(
    app, client, make_subscriber, run_jobs, inbox
):
    sub = make_subscriber("ann@example.com", name="Ann")
    legacy = Signer([app.config["SECRET_KEY"]], salt=LEGACY_MANAGE_SALT)
    page = "/manage/" + legacy.sign(f"{sub.id}-{link_stamp(sub.created_at)}").decode()
    shown = client.get(page)
    assert shown.status_code == 200 and "ann@example.com" in shown.get_data(as_text=True)
    renamed = _post(client, page, f"{page}/name", name="Ann Lee")
    assert renamed.status_code == 303
    assert _post(client, page, f"{page}/data").status_code == 403
    # Once the address changed, such a link could name either: it opens nothing.
    fresh = "/manage/" + tokens().access_token(sub.id, sub.created_at, sub.email)
    _post(client, fresh, f"{fresh}/address", email="ann.new@example.org")
    run_jobs()
    confirm = link_to(inbox.wait_for(1)[0], "/manage/address/")
    assert _post(client, fresh, confirm).status_code == 200
    gone = client.get(page)
    assert gone.status_code == 404 and "ann.new" not in gone.get_data(as_text=True)


def test_asking_for_the_link_again_and_again_mails_at_most_the_daily_cap(
    app, client, make_subscriber, run_jobs, inbox
):
    sub = make_subscriber("ann@example.com")
    page = "/manage/" + tokens().manage_token(sub.id, sub.created_at, sub.email)
    answers = set()
    for _ in range(5):
        answer = _post(client, page, f"{page}/link")
        answers.add((answer.status_code, client.get(page).get_data(as_text=True).count("We sent")))
    assert answers == {(303, 1)}  # the same answer each time, whether a mail goes or not
    run_jobs()
    assert len(inbox.wait_for(3)) == 3
    assert run_jobs() == 0 and len(inbox.messages) == 3
