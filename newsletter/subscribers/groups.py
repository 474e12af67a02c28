"""Sign-up forms for a group: the tag an embed snippet gives whoever signs up through it.

The editor makes a form for one existing tag ("group 8"); the snippet carries that tag's name
signed under the app's keys (its own salt), so a visitor who edits the hidden field cannot
give themselves another tag. A value that is not ours, or names a tag deleted since, is
ignored: the sign-up itself goes through as from a plain form.
"""

from __future__ import annotations

from collections.abc import Iterable

from itsdangerous import BadSignature, URLSafeSerializer
from sqlalchemy.orm import Session

from newsletter.errors import Invalid, NotFound
from newsletter.signing import serializer_keys
from newsletter.subscribers.tags import add_tags, clean_tag, find_tags

GROUP_SALT = "newsletter.signup-group.v1"
# The hidden field's name in the snippet.
GROUP_FIELD = "group"
# A signed tag name is well under this; a longer value is refused unread.
MAX_GROUP_VALUE = 400


def _serializer(secret_key: str, fallbacks: Iterable[str] | None) -> URLSafeSerializer:
    return URLSafeSerializer(serializer_keys(secret_key, fallbacks), salt=GROUP_SALT)


def group_value(secret_key: str, fallbacks: Iterable[str] | None, tag: str) -> str:
    """Return the hidden field's value for a form that tags its sign-ups with ``tag``."""
    return _serializer(secret_key, fallbacks).dumps(clean_tag(tag))


def read_group(secret_key: str, fallbacks: Iterable[str] | None, value: str) -> str | None:
    """Return the tag name a hidden field's value was signed for; None if it is not ours."""
    if not value or len(value) > MAX_GROUP_VALUE:
        return None
    try:
        name = _serializer(secret_key, fallbacks).loads(value)
        return clean_tag(name) if isinstance(name, str) else None
    except (BadSignature, Invalid, ValueError, TypeError):
        return None


def tag_signup(session: Session, subscriber_id: int, tag: str) -> bool:
    """Give the person who signed up through a group's form its tag, if the tag still exists.

    Return whether they carry it now. The caller commits.
    """
    try:
        found = find_tags(session, [tag])[0]
    except (NotFound, Invalid):
        return False
    add_tags(session, subscriber_id, [found.name], by="sign-up form")
    return True
