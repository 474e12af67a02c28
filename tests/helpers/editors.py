"""Editors in tests: an account, a real login through the form, a form post, a logged-in client, an
API token."""

from __future__ import annotations

import time
from datetime import timedelta
from typing import Any

from flask import g

from newsletter.auth.api_tokens import create_token
from newsletter.auth.passwords import hash_password
from newsletter.auth.sessions import _stamp
from newsletter.extensions import db
from newsletter.models import DailyStat, Editor, Subscriber, SubscriberStatus, utcnow
from tests.helpers import csrf_from

PASSWORD = "a long enough passphrase"


def add_editor(email: str = "ed@example.org", password: str = PASSWORD) -> Editor:
    """Insert an editor account with a known password."""
    editor = Editor(email=email, password_hash=hash_password(password))
    db.session.add(editor)
    db.session.commit()
    return editor


def page_token(client: Any, page: str) -> str:
    """Return the CSRF token of a form on ``page`` as this client's session sees it."""
    # Requests in a test share the fixture's app context, where Flask-WTF caches the token
    # on g; another client (or a new session) must not get a stale one.
    g.pop("csrf_token", None)
    return csrf_from(client.get(page).get_data(as_text=True))


def login(
    client: Any, email: str = "ed@example.org", password: str = PASSWORD, **extra: str
) -> Any:
    """Log in through the login form; return the response to the POST."""
    token = page_token(client, "/editor/login")
    data = {"email": email, "password": password, "csrf_token": token, **extra}
    return client.post("/editor/login", data=data)


def post_form(client: Any, page: str, action: str, **data: str) -> Any:
    """Post ``data`` to ``action`` with the CSRF token from ``page``, as a browser would."""
    token = page_token(client, page)
    return client.post(action, data={"csrf_token": token, **data})


def make_editor(email: str = "editor@example.org") -> Editor:
    """Insert an editor with a known password."""
    editor = Editor(email=email, password_hash=hash_password(PASSWORD))
    db.session.add(editor)
    db.session.commit()
    return editor


def log_in(client: Any, editor: Editor) -> None:
    """Give the test client the session the login page would give."""
    with client.session_transaction() as session:
        session["editor_id"] = editor.id
        session["editor_stamp"] = _stamp(editor)
        session["editor_since"] = session["editor_seen"] = int(time.time())


def editor_client(app: Any) -> Any:
    """Return a test client logged in as a fresh editor."""
    client = app.test_client()
    log_in(client, make_editor())
    return client


def bearer(app: Any, name: str = "tests") -> dict[str, str]:
    """Create an API token and return the header that carries it."""
    editor = db.session.scalar(db.select(Editor)) or make_editor("api@example.org")
    made = create_token(db.session, editor.id, name)
    db.session.commit()
    return {"Authorization": f"Bearer {made.secret}"}


def seed_people(app: Any) -> None:
    """Give the app an editor, two subscribers and four weeks of sign-up stats."""
    with app.app_context():
        add_editor("ed@example.org")
        db.session.add(
            Subscriber(
                email="ada@example.com", name="Ada Lovelace", status=SubscriberStatus.CONFIRMED
            )
        )
        db.session.add(
            Subscriber(email="bob@example.com", name="Bob", status=SubscriberStatus.PENDING)
        )
        today = utcnow().date()
        for weeks_ago, new in enumerate([30, 22, 41, 17]):
            day = today - timedelta(weeks=weeks_ago)
            db.session.add(DailyStat(day=day, kind="subscribed", count=new))
            db.session.add(DailyStat(day=day, kind="confirmed", count=new // 2))
        db.session.commit()
        db.session.remove()
