"""The editor's browser session: log in, log out, who is logged in, and the page guard."""

from __future__ import annotations

import functools
import hashlib
import secrets
from collections.abc import Callable
from typing import Any, TypeVar
from urllib.parse import urlsplit

from flask import current_app, g, redirect, request, session, url_for

from newsletter.extensions import db
from newsletter.models import Editor

F = TypeVar("F", bound=Callable[..., Any])


# --- the session --------------------------------------------------------------------------------


def _stamp(editor: Editor) -> str:
    # Changing the password changes the stamp, which ends every other session of that editor.
    return hashlib.sha256(editor.password_hash.encode()).hexdigest()[:16]


def _forget_csrf_token() -> None:
    # Flask-WTF caches the token on g; the session's secret behind it was just cleared.
    g.pop(current_app.config.get("WTF_CSRF_FIELD_NAME", "csrf_token"), None)


def log_in(editor: Editor) -> None:
    """Start a fresh session for ``editor`` (nothing from the anonymous session survives)."""
    session.clear()
    _forget_csrf_token()
    session["editor_id"] = editor.id
    session["editor_stamp"] = _stamp(editor)
    session["login_nonce"] = secrets.token_urlsafe(16)


def log_out() -> None:
    """End the session."""
    session.clear()
    _forget_csrf_token()
    request.environ.pop(_CACHE, None)


_CACHE = "newsletter.editor"


def current_editor() -> Editor | None:
    """Return the logged-in editor for this request, or None."""
    # Cached per request (not on g: an app context can outlive one request, as in tests).
    if _CACHE in request.environ:
        return request.environ[_CACHE]  # type: ignore[no-any-return]

    editor = None
    editor_id = session.get("editor_id")
    if isinstance(editor_id, int):
        found = db.session.get(Editor, editor_id)
        if found is not None and session.get("editor_stamp") == _stamp(found):
            editor = found
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
