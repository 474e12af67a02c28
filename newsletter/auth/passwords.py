"""Editor accounts: argon2id password hashes and the check of a login."""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Callable
from typing import Any, TypeVar

import sqlalchemy as sa
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError
from sqlalchemy.orm import Session

from newsletter.errors import Invalid
from newsletter.models import MAX_EMAIL_LENGTH, Editor, utcnow

MIN_PASSWORD_LENGTH = 10
MAX_PASSWORD_LENGTH = 1024  # argon2 accepts more, but nobody types this; keeps hashing cheap


_hasher = PasswordHasher()
# Verified against for unknown accounts, so they take as long as a wrong password.
_DUMMY_HASH = _hasher.hash(secrets.token_urlsafe(16))

F = TypeVar("F", bound=Callable[..., Any])


class PasswordTooShort(Invalid):
    """The new password is shorter than MIN_PASSWORD_LENGTH (or absurdly long)."""

    def __init__(self, message: str) -> None:
        super().__init__("password", message)


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
    return str(raw or "").strip().lower()[:MAX_EMAIL_LENGTH]


def account_hash(email: str) -> str:
    """Return the name under which an account's login failures and devices are kept."""
    return hashlib.sha256(normalize_login(email).encode()).hexdigest()[:32]


def set_password(editor: Editor, password: str) -> None:
    """Give ``editor`` a new password and end every session they have open."""
    editor.password_hash = hash_password(password)
    editor.session_generation += 1


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
