"""Known devices: a browser that once logged in to an account may still try it while the
account is blocked, so a stranger's guessing cannot lock its owner out."""

from __future__ import annotations

import secrets

from flask import Response, after_this_request, request
from itsdangerous import BadData, URLSafeTimedSerializer

from newsletter.auth.passwords import account_hash
from newsletter.extensions import settings
from newsletter.models import Editor
from newsletter.signing import serializer_keys

COOKIE = "editor_device"
MAX_AGE = 365 * 24 * 3600
_SALT = "editor-known-device"  # one salt per kind of signed value


def _serializer() -> URLSafeTimedSerializer:
    # Signed with the current key, read with any fallback: a rotation keeps devices known.
    found = settings()
    keys = serializer_keys(found.secret_key, found.secret_key_fallbacks)
    return URLSafeTimedSerializer(keys, salt=_SALT)


def remember_device(editor: Editor) -> None:
    """Mark this browser as one that logged in to ``editor``'s account (on this response)."""
    value = _serializer().dumps({"a": account_hash(editor.email), "d": secrets.token_urlsafe(16)})

    @after_this_request
    def _set(response: Response) -> Response:
        response.set_cookie(
            COOKIE,
            value,
            max_age=MAX_AGE,
            path="/editor",
            httponly=True,
            secure=settings().session_cookie_secure,
            samesite="Lax",
        )
        return response


def known_device(email: str) -> str | None:
    """Return this browser's device id when it logged in to ``email``'s account before."""
    raw = request.cookies.get(COOKIE)
    if not raw or len(raw) > 500:
        return None
    try:
        data = _serializer().loads(raw, max_age=MAX_AGE)
    except BadData:
        return None
    if not isinstance(data, dict) or data.get("a") != account_hash(email):
        return None
    device = data.get("d")
    return device if isinstance(device, str) else None
