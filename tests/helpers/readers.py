"""Helpers for tests that act as a reader: subscribe through the form, find links in mail."""

from __future__ import annotations

import re
from email.message import EmailMessage
from typing import Any

import sqlalchemy as sa

from newsletter.extensions import db
from newsletter.models import Subscriber, SubscriberEvent
from tests.helpers import csrf_from, links

BASE_URL = "http://newsletter.test"


def subscribe(client: Any, email: str, name: str = "", **extra: Any) -> Any:
    """Open the front page and send its form, as a browser would (following the redirect)."""
    token = csrf_from(client.get("/").get_data(as_text=True))
    return client.post(
        "/subscribe",
        data={"email": email, "name": name, "csrf_token": token, **extra},
        follow_redirects=True,
    )


def link_to(msg: EmailMessage, prefix: str, base: str = BASE_URL) -> str:
    """Return the path of the first link in the mail's text part under ``base + prefix``."""
    found = [u for u in links(msg) if u.startswith(base + prefix)]
    assert found, f"no {prefix} link in the mail"
    return found[0][len(base) :]


def subscriber(email: str) -> Subscriber | None:
    """Reload a subscriber from the database, skipping the session's cache."""
    db.session.expire_all()
    sub = db.session.scalar(sa.select(Subscriber).where(Subscriber.email == email))
    if sub is not None:
        db.session.expunge(sub)
    # End the read: on SQLite every transaction holds the write lock the app needs next.
    db.session.commit()
    return sub


def db_snapshot() -> tuple[Any, ...]:
    """Return everything a reader's action could change, to compare before and after."""
    db.session.expire_all()
    subs = db.session.execute(
        sa.select(
            Subscriber.email, Subscriber.name, Subscriber.status, Subscriber.version
        ).order_by(Subscriber.id)
    ).all()
    events = db.session.scalar(sa.select(sa.func.count()).select_from(SubscriberEvent))
    db.session.commit()
    return tuple(subs), events


def post_form(client: Any, email: str, name: str = "", **extra: Any) -> Any:
    """Send the front page's form and return the answer itself (a redirect when accepted)."""
    token = csrf_from(client.get("/").get_data(as_text=True))
    return client.post(
        "/subscribe", data={"email": email, "name": name, "csrf_token": token, **extra}
    )


def outcome(answer: Any) -> str:
    """Say what a sign-up's answer was: 'accepted', 'proof' (a challenge asked) or the status."""
    if answer.status_code == 303 and answer.headers["Location"].endswith("/check-inbox"):
        return "accepted"
    if answer.status_code == 200 and "data-challenge=" in answer.get_data(as_text=True):
        return "proof"
    return str(answer.status_code)


def without_address(page: str, email: str) -> str:
    """Return a check-inbox page without the address it names and the form's CSRF tokens.

    What is left must be the same for every sign-up, whoever is on the list.
    """
    page = page.replace(email.lower(), "ADDRESS")
    return re.sub(r'name="csrf_token" value="[^"]*"', 'name="csrf_token"', page)
