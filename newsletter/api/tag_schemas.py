"""The OpenAPI schemas of tags and of adding or changing a person (used by ``openapi.py``).

Each bound is the one the code enforces: ``subscribers.tags.clean_tag`` (trimmed, 1-50
characters, no commas, HTML, quotes or control characters) and ``subscribers.editing``.
"""

from __future__ import annotations

from typing import Any

from newsletter.models import MAX_TAG_LENGTH
from newsletter.subscribers.editing import MAX_REASON
from newsletter.subscribers.tags import MAX_TAGS_PER_PERSON

_STR = {"type": "string"}
_TAG_CHAR = "[^,<>&\"'`\\u0000-\\u001f\\u007f-\\u009f]"
TAG = {
    **_STR,
    "minLength": 1,
    "maxLength": MAX_TAG_LENGTH,
    "pattern": f"^(?!.*=\\?){_TAG_CHAR}*(?=\\S){_TAG_CHAR}{_TAG_CHAR}*$",
    "description": "a tag: trimmed, no commas, HTML, quotes or control characters; "
    "one tag whatever its case",
}
TAGS = {
    "type": "array",
    "items": TAG,
    "maxItems": MAX_TAGS_PER_PERSON,
    "description": "every tag the person carries, replacing the ones they had",
}
SEGMENT = {
    "type": "array",
    "items": TAG,
    "maxItems": MAX_TAGS_PER_PERSON,
    "description": "send only to the confirmed readers with any of these tags (a segment); "
    "omit or empty for every confirmed reader. An unknown tag answers 404, a segment with "
    "nobody confirmed 409; nothing is queued",
}
TAG_PARAM = {
    "name": "tag",
    "in": "query",
    "description": "only the people who carry this tag (any case); a tag nobody has made "
    "answers 422 (unknown_tag)",
    "schema": TAG,
}
REASON = {
    **_STR,
    "maxLength": MAX_REASON,
    "pattern": "^[^\\u0000]*$",
    "description": "why the person counts as confirmed; kept in their history",
}


def _obj(props: dict[str, Any], required: list[str] | None = None) -> dict[str, Any]:
    schema: dict[str, Any] = {"type": "object", "properties": props, "additionalProperties": False}
    if required:
        schema["required"] = required
    return schema


def subscriber_writes(
    name: dict[str, Any], email: dict[str, Any], settable: list[str]
) -> dict[str, Any]:
    """Return the SubscriberPatch and SubscriberCreate schemas."""
    return {
        "SubscriberPatch": _obj(
            {
                "name": name,
                "tags": TAGS,
                "status": {
                    "type": "string",
                    "enum": settable,
                    "description": "confirmed needs a reason and is refused for someone who "
                    "unsubscribed (only their own sign-up brings them back)",
                },
                "reason": REASON,
            }
        ),
        "SubscriberCreate": _obj(
            {
                "email": email,
                "name": name,
                "tags": TAGS,
                "status": {
                    "type": "string",
                    "enum": ["pending", "confirmed"],
                    "default": "pending",
                    "description": "pending: they are mailed the confirmation; confirmed: "
                    "they opted in elsewhere (a reason is required)",
                },
                "reason": REASON,
            },
            ["email"],
        ),
    }
