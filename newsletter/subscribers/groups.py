"""Sign-up forms for a group: the tag an embed snippet gives whoever signs up through it.

The editor makes a form for one existing tag ("group 8"); the snippet carries that tag's name
signed under the app's keys (its own salt), so a visitor who edits the hidden field cannot
give themselves another tag. A value that is not ours, or names a tag deleted since, is
ignored: the sign-up itself goes through as from a plain form.

A person not confirmed (new, still pending, or gone) is tagged at once, as a new sign-up is: the
tag does nothing until their own click on the confirmation. A reader already confirmed who
signs up through a group's form is not tagged by that sign-up (anyone can type anyone's
address): they are mailed a link, signed under its own salt, that
adds the group's tag when they follow it and press the button. The mail counts under their
mailbox's confirmation limits, so a form cannot flood a known reader.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

import sqlalchemy as sa
from itsdangerous import BadSignature, URLSafeSerializer, URLSafeTimedSerializer
from sqlalchemy.orm import Session

from newsletter.errors import Invalid, NotFound
from newsletter.models import Subscriber, SubscriberStatus, SubscriberTag
from newsletter.signing import serializer_keys
from newsletter.subscribers.limits import take_confirmation
from newsletter.subscribers.tags import add_tags, clean_tag, find_tags

GROUP_SALT = "newsletter.signup-group.v1"
JOIN_SALT = "newsletter.join-group.v1"
# How long the mailed link to join a group works.
JOIN_MAX_AGE = 7 * 24 * 3600
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
    """Give the person who signed up through a group's form its tag, if the tag still exists
    and they have room for one more.

    Return whether they carry it now. The caller commits.
    """
    try:
        found = find_tags(session, [tag])[0]
        add_tags(session, subscriber_id, [found.name], by="sign-up form")
    except (NotFound, Invalid):
        return False
    return True


def _join_serializer(secret_key: str, fallbacks: Iterable[str] | None) -> URLSafeTimedSerializer:
    return URLSafeTimedSerializer(serializer_keys(secret_key, fallbacks), salt=JOIN_SALT)


def join_token(secret_key: str, fallbacks: Iterable[str] | None, sub: Subscriber, tag: str) -> str:
    """Return the token of the mailed link that gives ``sub`` the tag ``tag``.

    It names the address too: after an address change the link no longer works.
    """
    return _join_serializer(secret_key, fallbacks).dumps([sub.id, sub.email, clean_tag(tag)])


@dataclass(frozen=True)
class JoinClaim:
    subscriber_id: int
    email: str
    tag: str


def read_join(
    secret_key: str, fallbacks: Iterable[str] | None, token: str, max_age: int = JOIN_MAX_AGE
) -> JoinClaim | None:
    """Return what a join link's token says; None if it is not ours, changed or too old."""
    if not token or len(token) > MAX_GROUP_VALUE:
        return None
    try:
        found = _join_serializer(secret_key, fallbacks).loads(token, max_age=max_age)
        sid, email, tag = found
        if not isinstance(sid, int) or not isinstance(email, str) or not isinstance(tag, str):
            return None
        return JoinClaim(sid, email, clean_tag(tag))
    except (BadSignature, Invalid, ValueError, TypeError):
        return None


def offer_group(session: Session, subscriber_id: int, tag: str, now: datetime) -> bool:
    """Say whether to mail a confirmed reader the link to join ``tag`` (their sign-up through
    its form); counts the mail under their mailbox's limits. The caller commits.

    No mail for a tag that no longer exists, a reader who carries it already or is not
    confirmed, or a mailbox that had its share of mail for now.
    """
    sub = session.get(Subscriber, subscriber_id)
    if sub is None or sub.status is not SubscriberStatus.CONFIRMED:
        return False
    try:
        found = find_tags(session, [tag])[0]
    except (NotFound, Invalid):
        return False
    has = session.scalar(
        sa.select(SubscriberTag.tag_id).where(
            SubscriberTag.subscriber_id == sub.id, SubscriberTag.tag_id == found.id
        )
    )
    if has is not None:
        return False
    due = take_confirmation(session, sub.email, now, per_domain=False)
    return due is not None and due <= now


def join_group(session: Session, claim: JoinClaim) -> str | None:
    """Give the reader a join link names the tag it names; return the tag's name, or None
    when the link no longer fits (the reader is gone, changed address, or the tag was deleted).
    """
    sub = session.get(Subscriber, claim.subscriber_id)
    if sub is None or sub.email != claim.email:
        return None
    try:
        found = find_tags(session, [claim.tag])[0]
    except (NotFound, Invalid):
        return None
    try:
        add_tags(session, sub.id, [found.name], by="their own link from a group's form")
    except Invalid:
        return None  # at the most tags a person can have
    return found.name
