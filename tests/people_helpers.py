"""Helpers for the editor's people pages and the API tests: an editor session, a token."""

from __future__ import annotations

from typing import Any

from newsletter.auth import passwords, sessions
from newsletter.auth.api_tokens import create_token
from newsletter.extensions import db
from newsletter.models import Editor

PASSWORD = "correct horse battery staple"


def make_editor(email: str = "editor@example.org") -> Editor:
    """Insert an editor with a known password."""
    editor = Editor(email=email, password_hash=passwords.hash_password(PASSWORD))
    db.session.add(editor)
    db.session.commit()
    return editor


def log_in(client: Any, editor: Editor) -> None:
    """Give the test client the session the login page would give."""
    with client.session_transaction() as session:
        session["editor_id"] = editor.id
        session["editor_stamp"] = sessions._stamp(editor)


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
