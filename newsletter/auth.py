"""Editor accounts: argon2 password hashes, login throttling in Redis, and the session guard."""

from __future__ import annotations

import functools
import hashlib
import math
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar
from urllib.parse import urlsplit

import sqlalchemy as sa
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError
from flask import current_app, g, redirect, request, session, url_for
from sqlalchemy.orm import Session

from .models import Editor, utcnow

MIN_PASSWORD_LENGTH = 10
MAX_PASSWORD_LENGTH = 1024  # argon2 accepts more, but nobody types this; keeps hashing cheap
ACCOUNT_LIMIT = 5  # failures per account within the window
IP_LIMIT = 20  # failures per client address within the window (many editors may share a NAT)
WINDOW_SECONDS = 15 * 60

_hasher = PasswordHasher()
# Verified against for unknown accounts, so they take as long as a wrong password.
_DUMMY_HASH = _hasher.hash(secrets.token_urlsafe(16))

F = TypeVar("F", bound=Callable[..., Any])


class PasswordTooShort(ValueError):
    """The new password is shorter than MIN_PASSWORD_LENGTH."""


def hash_password(password: str) -> str:
    """Return an argon2id hash of ``password``; refuse one that is too short or too long."""
    if len(password) < MIN_PASSWORD_LENGTH:
        raise PasswordTooShort(f"The password needs at least {MIN_PASSWORD_LENGTH} characters.")
    if len(password) > MAX_PASSWORD_LENGTH:
        raise PasswordTooShort(f"The password may have at most {MAX_PASSWORD_LENGTH} characters.")
    return _hasher.hash(password)


def verify_password(password_hash: str, password: str) -> bool:
    """Tell whether ``password`` matches ``password_hash`` (False for a broken hash)."""
    try:
        return _hasher.verify(password_hash, password)
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False


def normalize_login(raw: object) -> str:
    """Return the account name as stored: trimmed and lower-cased (bounded length)."""
    return str(raw or "").strip().lower()[:254]


def authenticate(db_session: Session, email: str, password: str) -> Editor | None:
    """Return the editor whose email and password match, upgrading an outdated hash."""
    editor = db_session.scalar(sa.select(Editor).where(Editor.email == normalize_login(email)))
    if editor is None or len(password) > MAX_PASSWORD_LENGTH:
        verify_password(_DUMMY_HASH, password[:MAX_PASSWORD_LENGTH])
        return None
    if not verify_password(editor.password_hash, password):
        return None
    if _hasher.check_needs_rehash(editor.password_hash):
        editor.password_hash = _hasher.hash(password)
    editor.last_login_at = utcnow()
    return editor


# --- throttling ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Blocked:
    retry_after: int  # seconds

    @property
    def minutes(self) -> int:
        return max(1, math.ceil(self.retry_after / 60))


def _keys(email: str, ip: str) -> list[tuple[str, int]]:
    account = hashlib.sha256(normalize_login(email).encode()).hexdigest()[:32]
    limits = current_app.config
    return [
        (f"login-fail:acct:{account}", int(limits.get("LOGIN_ACCOUNT_LIMIT", ACCOUNT_LIMIT))),
        (f"login-fail:ip:{ip}", int(limits.get("LOGIN_IP_LIMIT", IP_LIMIT))),
    ]


def login_blocked(email: str, ip: str) -> Blocked | None:
    """Return how long to wait when this account or this address failed too often, else None."""
    from . import get_redis

    client = get_redis()
    for key, limit in _keys(email, ip):
        count = client.get(key)
        if count is not None and int(count) >= limit:
            ttl = client.ttl(key)
            return Blocked(retry_after=ttl if ttl and ttl > 0 else WINDOW_SECONDS)
    return None


def record_failure(email: str, ip: str) -> None:
    """Count a failed login against both the account and the client address."""
    from . import get_redis

    window = int(current_app.config.get("LOGIN_WINDOW", WINDOW_SECONDS))
    pipe = get_redis().pipeline()
    for key, _limit in _keys(email, ip):
        # The window starts at the first failure (fixed window; works on any Redis version).
        pipe.set(key, 0, ex=window, nx=True)
        pipe.incr(key)
    pipe.execute()


def clear_failures(email: str) -> None:
    """Forget an account's failures after a good login (the address's count stays)."""
    from . import get_redis

    get_redis().delete(_keys(email, "-")[0][0])


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
    from .extensions import db

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
