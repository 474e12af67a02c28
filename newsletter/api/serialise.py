"""What the API says about subscribers and issues: one field list builds the JSON and the schema.

``openapi.py`` turns the same lists and limits into the document, so the document cannot
describe a key, a status or a bound the routes do not have.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import Enum
from typing import Any, Generic, TypeVar

from newsletter.bounces.listing import BounceRow
from newsletter.models import BounceKind, Issue, IssueStatus, Subscriber, SubscriberStatus

M = TypeVar("M")

# --- bounds and choices the routes enforce and the document states ---------------------------

MAX_ID = 2**31 - 1  # the column's range; a larger number in a URL is simply not found
# A cursor is the last id of a page, so never more digits than the largest id after it; any
# such number is a position in the list (api/plumbing.cursor_arg).
CURSOR_PATTERN = f"^[0-9]{{1,{len(str(MAX_ID + 1))}}}$"
DEFAULT_LIMIT = 50
MAX_LIMIT = 200
MAX_QUERY = 100  # characters of a subscriber search
SUBSCRIBER_STATUS = tuple(s.value for s in SubscriberStatus)
ISSUE_STATUS = tuple(s.value for s in IssueStatus)
BOUNCE_KINDS = tuple(k.value for k in BounceKind)
# Confirmed only with a reason (kept in the person's history); pending only a sign-up makes.
SETTABLE_STATUS = (
    SubscriberStatus.CONFIRMED.value,
    SubscriberStatus.UNSUBSCRIBED.value,
    SubscriberStatus.BOUNCED.value,
)

DATE_TIME = "date-time"


@dataclass(frozen=True)
class Field(Generic[M]):
    """One key of a JSON object: its JSON type, and how to read its value off a row."""

    name: str
    type: str
    read: Callable[[M], object]
    format: str | None = None
    nullable: bool = False
    enum: Sequence[str] | None = None

    def schema(self) -> dict[str, Any]:
        """Return the JSON Schema of this key."""
        out: dict[str, Any] = {"type": [self.type, "null"] if self.nullable else self.type}
        if self.enum is not None:
            out["enum"] = list(self.enum)
        if self.type == "array":
            out["items"] = {"type": "string"}
        if self.format is not None:
            out["format"] = self.format
        return out

    def value(self, row: M) -> object:
        """Return this key's JSON value for a row."""
        raw = self.read(row)
        # Not left to jsonify: it would write a datetime as an HTTP date, not ISO 8601.
        if isinstance(raw, Enum):
            return raw.value
        if isinstance(raw, datetime):
            return raw.isoformat()
        return raw


SUBSCRIBER_FIELDS: tuple[Field[Subscriber], ...] = (
    Field("id", "integer", lambda s: s.id),
    Field("email", "string", lambda s: s.email),
    Field("name", "string", lambda s: s.name),
    Field("status", "string", lambda s: s.status, enum=SUBSCRIBER_STATUS),
    Field("source", "string", lambda s: s.source),
    Field("created_at", "string", lambda s: s.created_at, DATE_TIME),
    Field("confirmed_at", "string", lambda s: s.confirmed_at, DATE_TIME, nullable=True),
    Field("unsubscribed_at", "string", lambda s: s.unsubscribed_at, DATE_TIME, nullable=True),
    Field("bounced_at", "string", lambda s: s.bounced_at, DATE_TIME, nullable=True),
    # Set while the reader has paused the tips from their own page (sends skip them till then).
    Field("paused_until", "string", lambda s: s.paused_until, DATE_TIME, nullable=True),
    Field("tags", "array", lambda s: [t.name for t in s.tags]),
)

ISSUE_FIELDS: tuple[Field[Issue], ...] = (
    Field("id", "integer", lambda i: i.id),
    Field("slug", "string", lambda i: i.slug),
    Field("subject", "string", lambda i: i.subject),
    Field("body_md", "string", lambda i: i.body_md),
    Field("preheader", "string", lambda i: i.preheader),
    Field("status", "string", lambda i: i.status, enum=ISSUE_STATUS),
    Field("created_at", "string", lambda i: i.created_at, DATE_TIME),
    Field("updated_at", "string", lambda i: i.updated_at, DATE_TIME),
    Field("scheduled_at", "string", lambda i: i.scheduled_at, DATE_TIME, nullable=True),
    Field("queued_at", "string", lambda i: i.queued_at, DATE_TIME, nullable=True),
    Field("sent_at", "string", lambda i: i.sent_at, DATE_TIME, nullable=True),
    Field("audience", "integer", lambda i: i.audience),
    # The tags whose confirmed readers it goes to; empty: every confirmed reader.
    Field("segment", "array", lambda i: [t.name for t in i.segment]),
)


BOUNCE_FIELDS: tuple[Field[BounceRow], ...] = (
    Field("id", "integer", lambda b: b.id),
    Field("at", "string", lambda b: b.at, DATE_TIME),
    Field("kind", "string", lambda b: b.kind, enum=BOUNCE_KINDS),
    Field("source", "string", lambda b: b.source),
    Field("status_code", "string", lambda b: b.status_code),
    Field("diagnostic", "string", lambda b: b.diagnostic),
    Field("subscriber_id", "integer", lambda b: b.subscriber_id, nullable=True),
    Field("email", "string", lambda b: b.email),
    Field("issue_id", "integer", lambda b: b.issue_id, nullable=True),
    Field("undone", "boolean", lambda b: b.undone),
)


def bounce_json(row: BounceRow) -> dict[str, Any]:
    """Return the fields of a bounce."""
    return {field.name: field.value(row) for field in BOUNCE_FIELDS}


def subscriber_json(sub: Subscriber) -> dict[str, Any]:
    """Return the public fields of a subscriber."""
    return {field.name: field.value(sub) for field in SUBSCRIBER_FIELDS}


def issue_json(issue: Issue) -> dict[str, Any]:
    """Return the fields of an issue."""
    return {field.name: field.value(issue) for field in ISSUE_FIELDS}
