"""The editor's browser session: log in, log out, who is logged in, and the page guard."""

from __future__ import annotations

import functools
import hashlib
import secrets
import time
from collections.abc import Callable
from typing import Any, TypeVar
from urllib.parse import urlsplit

import sqlalchemy as sa
from flask import current_app, g, redirect, request, session, url_for

from newsletter.auth.devices import remember_device
from newsletter.extensions import db, settings
from newsletter.models import Editor

F = TypeVar("F", bound=Callable[..., Any])

# Writing the last activity on every request would rewrite the cookie on every page.
SEEN_RESOLUTION = 60  # seconds
_KEYS = ("editor_id", "editor_stamp", "editor_since", "editor_seen", "login_nonce")
_CACHE = "newsletter.editor"


# --- the session --------------------------------------------------------------------------------


def _stamp(editor: Editor) -> str:
    # A new password or a new generation (log out) changes the stamp, which ends every session
    # of that editor, in every browser.
    material = f"{editor.session_generation}:{editor.password_hash}"
    return hashlib.sha256(material.encode()).hexdigest()[:16]


def _forget_csrf_token() -> None:
    # Flask-WTF caches the token on g; the session's secret behind it was just cleared.
    g.pop(current_app.config.get("WTF_CSRF_FIELD_NAME", "csrf_token"), None)


def log_in(editor: Editor) -> None:
    """Start a fresh session for ``editor`` (nothing from the anonymous session survives)."""
    session.clear()
    _forget_csrf_token()
    now = int(time.time())
    session["editor_id"] = editor.id
    session["editor_stamp"] = _stamp(editor)
    session["editor_since"] = now
    session["editor_seen"] = now
    session["login_nonce"] = secrets.token_urlsafe(16)
    remember_device(editor)


def end_sessions(editor_id: int) -> None:
    """End every session of an editor, in every browser (the caller commits)."""
    db.session.execute(
        sa.update(Editor)
        .where(Editor.id == editor_id)
        .values(session_generation=Editor.session_generation + 1)
    )


def log_out() -> None:
    """End the session, and every other session of the same editor."""
    editor = current_editor()
    if editor is not None:
        # A copy of the cookie (another browser, a thief) must not outlive the log out.
        end_sessions(editor.id)
        db.session.commit()
    session.clear()
    _forget_csrf_token()
    request.environ.pop(_CACHE, None)


def _still_fresh() -> bool:
    """Tell whether the session is within its idle and maximum age; note this activity."""
    now = int(time.time())
    since, seen = session.get("editor_since"), session.get("editor_seen")
    if not isinstance(since, int) or not isinstance(seen, int):
        return False
    found = settings()
    if now - seen > found.editor_session_idle or now - since > found.editor_session_max:
        return False
    if now - seen >= SEEN_RESOLUTION:
        session["editor_seen"] = now
    return True


def current_editor() -> Editor | None:
    """Return the logged-in editor for this request, or None."""
    # Cached per request (not on g: an app context can outlive one request, as in tests).
    if _CACHE in request.environ:
        return request.environ[_CACHE]  # type: ignore[no-any-return]

    editor = None
    editor_id = session.get("editor_id")
    if isinstance(editor_id, int):
        # Read afresh: the generation may have moved since this database session loaded it.
        found = db.session.get(Editor, editor_id, populate_existing=True)
        if found is not None and session.get("editor_stamp") == _stamp(found) and _still_fresh():
            editor = found
        else:
            for key in _KEYS:  # ended: the browser gets a cookie without it
                session.pop(key, None)
    request.environ[_CACHE] = editor
    return editor


def safe_next(target: str | None, default: str) -> str:
    """Return ``target`` when it is a relative path on this site, else ``default``."""
    if not target or not target.startswith("/") or target.startswith("//"):
        return default
    if "\\" in target or any(ord(c) < 32 or ord(c) == 127 for c in target):
        return default
    parts = urlsplit(target)
    if parts.scheme or parts.netloc:
        return default
    return target


def login_required(view: F) -> F:
    """Send anonymous visitors to the login page, remembering where they wanted to go."""

    @functools.wraps(view)
    def wrapped(*args: Any, **kwargs: Any) -> Any:
        if current_editor() is None:
            wanted = request.full_path if request.query_string else request.path
            if request.method != "GET":
                wanted = "/editor/"  # an action's URL answers only POST; go home instead
            return redirect(url_for("editor.login", next=safe_next(wanted, "/editor/")))
        return view(*args, **kwargs)

    return wrapped  # type: ignore[return-value]
