"""API bearer tokens: created once and shown once, stored only as a SHA-256 hash."""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import timedelta

import sqlalchemy as sa
from sqlalchemy.orm import Session

from newsletter.models import ApiToken, rowcount, utcnow

TOKEN_PREFIX = "totw_"
# Writing last_used_at on every request would turn each API read into a write.
LAST_USED_RESOLUTION = timedelta(minutes=1)


@dataclass
class NewToken:
    token: ApiToken
    secret: str  # the whole bearer value; never stored


def hash_token(value: str) -> str:
    """Return the SHA-256 hex digest under which a token is stored."""
    return hashlib.sha256(value.encode("utf-8")).hexdigest()


def create_token(session: Session, editor_id: int, name: str) -> NewToken:
    """Make a token for an editor; the caller shows ``secret`` once and forgets it."""
    name = " ".join((name or "").split())[:100] or "API token"
    secret = TOKEN_PREFIX + secrets.token_urlsafe(32)
    row = ApiToken(
        editor_id=editor_id, name=name, token_hash=hash_token(secret), prefix=secret[:12]
    )
    session.add(row)
    session.flush()
    return NewToken(row, secret)


def revoke_token(session: Session, token_id: int) -> bool:
    """Revoke a token; return whether an active one was found."""
    result = session.execute(
        sa.update(ApiToken)
        .where(ApiToken.id == token_id, ApiToken.revoked_at.is_(None))
        .values(revoked_at=utcnow())
    )
    return bool(rowcount(result))


def verify_token(session: Session, value: str | None) -> ApiToken | None:
    """Return the active token with this bearer value, or None; note when it was used."""
    if not value or len(value) > 200 or not value.startswith(TOKEN_PREFIX):
        return None
    row = session.scalar(
        sa.select(ApiToken).where(
            ApiToken.token_hash == hash_token(value), ApiToken.revoked_at.is_(None)
        )
    )
    if row is None:
        return None
    now = utcnow()
    if row.last_used_at is None or now - row.last_used_at > LAST_USED_RESOLUTION:
        row.last_used_at = now
        session.commit()
    return row


def list_tokens(session: Session) -> list[ApiToken]:
    """Return every token, newest first (revoked ones too, for the record)."""
    return list(session.scalars(sa.select(ApiToken).order_by(ApiToken.id.desc())))
