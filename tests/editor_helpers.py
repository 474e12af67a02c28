"""Helpers for the editor tests: an account, a real login through the form, a form post."""

from __future__ import annotations

from typing import Any

from conftest import csrf_from
from flask import g

from newsletter.auth.passwords import hash_password
from newsletter.extensions import db
from newsletter.models import Editor

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
