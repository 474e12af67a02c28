"""Tables: subscribers and their history, editors, issues, deliveries, API tokens, webhooks."""

from __future__ import annotations

import enum
from datetime import UTC, date, datetime
from typing import TYPE_CHECKING, Any, cast

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, Session, mapped_column, relationship

from newsletter.extensions import Base, db

if TYPE_CHECKING:
    # db.Model is a class flask-sqlalchemy builds from Base in a call, which mypy cannot follow
    # (python/mypy#8603); to the type checker the models derive from Base, which it mirrors.
    Model = Base
else:
    Model = db.Model

# The longest email address there is (RFC 5321's path limit less its angle brackets): every
# address column, form field, and check that cuts or refuses a longer one uses this.
MAX_EMAIL_LENGTH = 254


def utcnow() -> datetime:
    """Return the current time as an aware UTC datetime."""
    return datetime.now(UTC)


def rowcount(result: sa.Result[*tuple[Any, ...]]) -> int:
    """Return how many rows the UPDATE or DELETE that gave ``result`` matched."""
    # Session.execute() is typed to return a Result; for DML it is always a CursorResult.
    return cast("sa.CursorResult[*tuple[Any, ...]]", result).rowcount


def refresh_statistics(session: Session, *tables: str) -> None:
    """Refresh PostgreSQL's planner statistics of ``tables`` after a bulk change (else nothing).

    A table filled a moment ago has none until autovacuum comes by (or never, with it off),
    and the planner then guesses. Sampling costs tens of milliseconds even at a million rows.
    """
    if session.get_bind().dialect.name == "postgresql":
        for table in tables:
            session.execute(sa.text(f"ANALYZE {table}"))


class UTCDateTime(sa.types.TypeDecorator[datetime]):
    """Store aware datetimes as UTC; SQLite forgets the zone, so put it back on the way out."""

    impl = sa.DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: sa.Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given; use an aware one")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: sa.Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _enum(cls: type[enum.Enum], name: str) -> sa.Enum:
    # Stored as VARCHAR with a CHECK-free native=False enum so adding a state is a cheap migration.
    return sa.Enum(
        cls,
        name=name,
        native_enum=False,
        create_constraint=False,
        length=20,
        values_callable=lambda e: [m.value for m in e],
        validate_strings=True,
    )


class SubscriberStatus(enum.StrEnum):
    PENDING = "pending"
    CONFIRMED = "confirmed"
    UNSUBSCRIBED = "unsubscribed"
    BOUNCED = "bounced"


class Subscriber(Model):
    __tablename__ = "subscriber"
    # SQLite would give an erased newest reader's id to the next sign-up (migration 0007).
    __table_args__ = {"sqlite_autoincrement": True}

    id: Mapped[int] = mapped_column(primary_key=True)
    # Normalised by email-validator and lower-cased: case variants are one person.
    email: Mapped[str] = mapped_column(sa.String(MAX_EMAIL_LENGTH), unique=True)
    name: Mapped[str] = mapped_column(sa.String(100), default="")
    status: Mapped[SubscriberStatus] = mapped_column(
        _enum(SubscriberStatus, "subscriber_status"), default=SubscriberStatus.PENDING, index=True
    )
    # Bumped on every status change; confirm tokens carry it, so an old link replays nothing.
    version: Mapped[int] = mapped_column(default=1)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow, index=True)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow, onupdate=utcnow)
    confirmed_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    unsubscribed_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    bounced_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    signup_ip: Mapped[str | None] = mapped_column(sa.String(45))
    source: Mapped[str] = mapped_column(sa.String(20), default="form")  # form, import, api
    # Limits against list-bombing: when the last confirmation mail went, and how many today.
    confirm_sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    confirm_sent_day: Mapped[date | None] = mapped_column(sa.Date())
    confirm_sent_count: Mapped[int] = mapped_column(default=0)
    # Mail owed since this moment, cleared once the server took it (or refused it for good):
    # the reconciler rebuilds from these whatever Redis lost. Both are NULL nearly always.
    confirm_due_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), index=True)
    welcome_due_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), index=True)
    # The name typed in the newest sign-up for an address already known: it rides in the
    # confirmation link and becomes the name only when that link is confirmed.
    confirm_name: Mapped[str | None] = mapped_column(sa.String(100))
    # The reader asked for a break: the sends skip them (as "skipped") until this moment.
    paused_until: Mapped[datetime | None] = mapped_column(UTCDateTime())
    # An address change waits here until the new address confirms; its mail is owed since
    # new_email_due_at. Once changed, the old address is kept only until it has been told.
    new_email: Mapped[str | None] = mapped_column(sa.String(MAX_EMAIL_LENGTH))
    new_email_due_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), index=True)
    old_email: Mapped[str | None] = mapped_column(sa.String(MAX_EMAIL_LENGTH))
    old_email_due_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), index=True)
    # The evergreen sequence (delivery/evergreen.py): in it or not, the reader's own pace in
    # seconds (None: EVERGREEN_INTERVAL), the last tip handed out (its number in the
    # sequence) and when the next is due (NULL: nothing due, e.g. not in the sequence).
    evergreen: Mapped[bool] = mapped_column(default=False, server_default=sa.false())
    evergreen_pace: Mapped[int | None] = mapped_column()
    evergreen_position: Mapped[int] = mapped_column(default=0, server_default="0")
    evergreen_due_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), index=True)

    events: Mapped[list[SubscriberEvent]] = relationship(
        back_populates="subscriber", cascade="all, delete-orphan", passive_deletes=True
    )
    # Read only (subscribers/tags.py writes the links); loaded when asked for, never by default.
    tags: Mapped[list[Tag]] = relationship(
        secondary="subscriber_tag", viewonly=True, order_by="Tag.key"
    )


class EventKind(enum.StrEnum):
    SUBSCRIBED = "subscribed"
    CONFIRMATION_SENT = "confirmation_sent"
    CONFIRMED = "confirmed"
    UNSUBSCRIBED = "unsubscribed"
    BOUNCED = "bounced"
    IMPORTED = "imported"
    EDITED = "edited"
    # The reader's own page: at most 20 characters, the column's length.
    RENAMED = "renamed"
    PAUSED = "paused"
    RESUMED = "resumed"
    ADDRESS_CHANGED = "address_changed"


class SubscriberEvent(Model):
    """One line of a person's history, shown on their page."""

    __tablename__ = "subscriber_event"

    id: Mapped[int] = mapped_column(primary_key=True)
    subscriber_id: Mapped[int] = mapped_column(
        sa.ForeignKey("subscriber.id", ondelete="CASCADE"), index=True
    )
    kind: Mapped[EventKind] = mapped_column(_enum(EventKind, "event_kind"))
    at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    ip: Mapped[str | None] = mapped_column(sa.String(45))
    detail: Mapped[str] = mapped_column(sa.String(200), default="")

    subscriber: Mapped[Subscriber] = relationship(back_populates="events")


# A tag's longest name; names are compared case-insensitively through ``Tag.key``.
MAX_TAG_LENGTH = 50


class Tag(Model):
    """A label on people ("group 7"): what the list filters by and a send is segmented by."""

    __tablename__ = "tag"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(sa.String(MAX_TAG_LENGTH))
    # The lower-cased name: "Group 7" and "group 7" are one tag.
    key: Mapped[str] = mapped_column(sa.String(MAX_TAG_LENGTH), unique=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class SubscriberTag(Model):
    """Who carries which tag; indexed both ways (a person's tags, a tag's people)."""

    __tablename__ = "subscriber_tag"
    __table_args__ = (sa.Index("ix_subscriber_tag_tag", "tag_id", "subscriber_id"),)

    subscriber_id: Mapped[int] = mapped_column(
        sa.ForeignKey("subscriber.id", ondelete="CASCADE"), primary_key=True
    )
    tag_id: Mapped[int] = mapped_column(
        sa.ForeignKey("tag.id", ondelete="CASCADE"), primary_key=True
    )


class ConfirmLimit(Model):
    """Confirmation mails counted per mailbox (all aliases of one inbox) and per domain.

    ``key`` is a hash: the table must not become a second list of addresses.
    """

    __tablename__ = "confirm_limit"

    key: Mapped[str] = mapped_column(sa.String(70), primary_key=True)
    period: Mapped[datetime] = mapped_column(UTCDateTime())  # the counted day or window
    count: Mapped[int] = mapped_column(default=0)
    last_at: Mapped[datetime] = mapped_column(UTCDateTime(), index=True)


class DailyStat(Model):
    """Counts per day and kind, bumped at each transition, so stats never scan the list."""

    __tablename__ = "daily_stat"

    day: Mapped[date] = mapped_column(sa.Date(), primary_key=True)
    kind: Mapped[str] = mapped_column(sa.String(20), primary_key=True)
    count: Mapped[int] = mapped_column(default=0)


class Editor(Model):
    __tablename__ = "editor"

    id: Mapped[int] = mapped_column(primary_key=True)
    email: Mapped[str] = mapped_column(sa.String(MAX_EMAIL_LENGTH), unique=True)
    password_hash: Mapped[str] = mapped_column(sa.String(200))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    last_login_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    # Part of every browser session's stamp: raising it ends all of this editor's sessions.
    session_generation: Mapped[int] = mapped_column(default=0, server_default="0")
    time_zone: Mapped[str | None] = mapped_column(sa.String(64))  # IANA name; None: the browser's


class ApiToken(Model):
    """A bearer token for /api/v1; only its SHA-256 is stored."""

    __tablename__ = "api_token"

    id: Mapped[int] = mapped_column(primary_key=True)
    editor_id: Mapped[int] = mapped_column(sa.ForeignKey("editor.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(sa.String(100))
    token_hash: Mapped[str] = mapped_column(sa.String(64), unique=True)
    prefix: Mapped[str] = mapped_column(sa.String(12))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    last_used_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime())


class IssueStatus(enum.StrEnum):
    DRAFT = "draft"
    READY = "ready"  # waits for the next weekly slot
    SCHEDULED = "scheduled"  # waits for scheduled_at
    SENDING = "sending"
    PAUSED = "paused"
    SENT = "sent"
    CANCELLED = "cancelled"
    # The back catalogue: published before, elsewhere (a blog, an export), brought in by an
    # import or the feed's first poll. Public in the archive; never mailed as new, never a send.
    ARCHIVED = "archived"


# The issue states other code asks about, named once (views, engine, API and stats use these).
ISSUE_UNSENT = (IssueStatus.DRAFT, IssueStatus.READY, IssueStatus.SCHEDULED)  # editable, queueable
ISSUE_ACTIVE = (IssueStatus.SENDING, IssueStatus.PAUSED)  # a send under way
ISSUE_PUBLIC = (*ISSUE_ACTIVE, IssueStatus.SENT)  # in the archive and the feed
ISSUE_STARTED = (*ISSUE_PUBLIC, IssueStatus.CANCELLED)  # queued at some point: no more edits
ISSUE_IN_ARCHIVE = (*ISSUE_PUBLIC, IssueStatus.ARCHIVED)  # the public archive and its feed
# Editable: an unsent issue, or a back-catalogue tip (its conversion may want a touch).
ISSUE_EDITABLE = (*ISSUE_UNSENT, IssueStatus.ARCHIVED)


class Issue(Model):
    __tablename__ = "issue"

    id: Mapped[int] = mapped_column(primary_key=True)
    slug: Mapped[str] = mapped_column(sa.String(120), unique=True)
    subject: Mapped[str] = mapped_column(sa.String(200))
    body_md: Mapped[str] = mapped_column(sa.Text())
    # The line an inbox shows after the subject; empty: none is added to the mail.
    preheader: Mapped[str] = mapped_column(sa.String(200), default="", server_default="")
    status: Mapped[IssueStatus] = mapped_column(
        _enum(IssueStatus, "issue_status"), default=IssueStatus.DRAFT, index=True
    )
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow, onupdate=utcnow)
    scheduled_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    queued_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    # Which weekly slot (its UTC start) sent this issue; unique, so one slot sends once.
    slot_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), unique=True)
    audience: Mapped[int] = mapped_column(default=0)
    batches: Mapped[int] = mapped_column(default=0)
    pause_reason: Mapped[str] = mapped_column(sa.String(300), default="")
    # The relay cannot be reached: since when, its last answer, when the send tries again.
    relay_down_since: Mapped[datetime | None] = mapped_column(UTCDateTime())
    relay_error: Mapped[str] = mapped_column(sa.String(300), default="", server_default="")
    relay_retry_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    # The tags it goes to (none: every confirmed reader); issues/segment.py writes them.
    segment: Mapped[list[Tag]] = relationship(
        secondary="issue_tag", viewonly=True, order_by="Tag.key"
    )


class IssueTag(Model):
    """An issue's segment: it goes to the confirmed readers with any of these tags (none: all)."""

    __tablename__ = "issue_tag"

    issue_id: Mapped[int] = mapped_column(
        sa.ForeignKey("issue.id", ondelete="CASCADE"), primary_key=True
    )
    # RESTRICT: a tag an issue went to stays, so the archive can still say who got it.
    tag_id: Mapped[int] = mapped_column(
        sa.ForeignKey("tag.id", ondelete="RESTRICT"), primary_key=True, index=True
    )


class Branding(Model):
    """The look set at /editor/settings: one row (id 1); an empty field leaves the default."""

    __tablename__ = "branding"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(sa.String(100), default="")
    pitch: Mapped[str] = mapped_column(sa.String(300), default="")
    blurb: Mapped[str] = mapped_column(sa.String(2000), default="")
    footer: Mapped[str] = mapped_column(sa.String(1000), default="")
    postal_address: Mapped[str] = mapped_column(sa.String(300), default="")
    welcome_text: Mapped[str] = mapped_column(sa.String(2000), default="")
    accent: Mapped[str] = mapped_column(sa.String(7), default="")
    logo_url: Mapped[str] = mapped_column(sa.String(500), default="")
    logo_png: Mapped[bytes | None] = mapped_column(sa.LargeBinary())  # an upload, resized
    version: Mapped[int] = mapped_column(default=1)  # new on every save: logo URLs change
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow, onupdate=utcnow)


class DeliveryStatus(enum.StrEnum):
    QUEUED = "queued"
    SENDING = "sending"  # claimed by a worker under a lease
    SENT = "sent"
    FAILED = "failed"
    SKIPPED = "skipped"


class Delivery(Model):
    """One recipient of one issue: created at queueing, claimed, then sent/failed/skipped."""

    __tablename__ = "delivery"
    __table_args__ = (
        sa.UniqueConstraint("issue_id", "subscriber_id", name="uq_delivery_issue_subscriber"),
        # One index for every read of an issue's rows by status (and batch): a claim reads a
        # batch's queued rows in id order and stops at the chunk. A second, smaller index on
        # (issue_id, status) let a planner without statistics read the whole issue instead.
        sa.Index("ix_delivery_issue_status_batch", "issue_id", "status", "batch", "id"),
        sa.Index("ix_delivery_subscriber", "subscriber_id"),
        # The evergreen sequence's copies (batch -1): the tick finds them without a scan.
        sa.Index(
            "ix_delivery_evergreen",
            "status",
            "issue_id",
            postgresql_where=sa.text("batch < 0"),
            sqlite_where=sa.text("batch < 0"),
        ),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    issue_id: Mapped[int] = mapped_column(sa.ForeignKey("issue.id", ondelete="CASCADE"))
    # SET NULL on erase: the count survives, the person does not.
    subscriber_id: Mapped[int | None] = mapped_column(
        sa.ForeignKey("subscriber.id", ondelete="SET NULL")
    )
    batch: Mapped[int] = mapped_column(default=0)
    status: Mapped[DeliveryStatus] = mapped_column(
        _enum(DeliveryStatus, "delivery_status"), default=DeliveryStatus.QUEUED
    )
    attempts: Mapped[int] = mapped_column(default=0)
    lease_until: Mapped[datetime | None] = mapped_column(UTCDateTime())
    claimed_by: Mapped[str | None] = mapped_column(sa.String(64))
    next_attempt_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    last_error: Mapped[str] = mapped_column(sa.String(300), default="")


class ImportStatus(enum.StrEnum):
    PREVIEW = "preview"  # uploaded; the editor checks the column mapping before it is queued
    QUEUED = "queued"
    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"


class ImportJob(Model):
    """A CSV import from the browser, run by a worker; progress and bad rows for the report."""

    __tablename__ = "import_job"

    id: Mapped[int] = mapped_column(primary_key=True)
    filename: Mapped[str] = mapped_column(sa.String(200))
    csv_text: Mapped[str | None] = mapped_column(sa.Text())  # dropped once imported
    confirmed: Mapped[bool] = mapped_column(default=False)
    # Tags every row gets, comma-separated (tag names hold no commas).
    tags: Mapped[str] = mapped_column(sa.Text(), default="", server_default="")
    status: Mapped[ImportStatus] = mapped_column(
        _enum(ImportStatus, "import_status"), default=ImportStatus.QUEUED
    )
    total_rows: Mapped[int] = mapped_column(default=0)
    done_rows: Mapped[int] = mapped_column(default=0)
    added: Mapped[int] = mapped_column(default=0)
    errors_json: Mapped[str] = mapped_column(sa.Text(), default="[]")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    # Raised at each claim; a run whose number is no longer current was taken back and stops.
    attempt: Mapped[int] = mapped_column(default=0, server_default="0")
    # Renewed at every progress commit: a running import silent for a lease lost its worker.
    heartbeat_at: Mapped[datetime | None] = mapped_column(UTCDateTime())


class Webhook(Model):
    __tablename__ = "webhook"

    id: Mapped[int] = mapped_column(primary_key=True)
    url: Mapped[str] = mapped_column(sa.String(500))
    secret: Mapped[str] = mapped_column(sa.String(100))
    events: Mapped[str] = mapped_column(sa.String(200))  # comma-separated event names
    active: Mapped[bool] = mapped_column(default=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class WebhookDeliveryStatus(enum.StrEnum):
    PENDING = "pending"
    OK = "ok"
    FAILED = "failed"


class WebhookDelivery(Model):
    __tablename__ = "webhook_delivery"

    id: Mapped[int] = mapped_column(primary_key=True)
    webhook_id: Mapped[int] = mapped_column(
        sa.ForeignKey("webhook.id", ondelete="CASCADE"), index=True
    )
    event: Mapped[str] = mapped_column(sa.String(50))
    payload: Mapped[str] = mapped_column(sa.Text())
    # The same VARCHAR(20) as before it was an enum: no CHECK constraint, so no migration.
    status: Mapped[WebhookDeliveryStatus] = mapped_column(
        _enum(WebhookDeliveryStatus, "webhook_delivery_status"),
        default=WebhookDeliveryStatus.PENDING,
    )
    attempts: Mapped[int] = mapped_column(default=0)
    response_code: Mapped[int | None] = mapped_column()
    last_error: Mapped[str] = mapped_column(sa.String(300), default="")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    delivered_at: Mapped[datetime | None] = mapped_column(UTCDateTime())


class BounceKind(enum.StrEnum):
    HARD = "hard"  # the address is bad: the reader is bounced
    SOFT = "soft"  # full or unreachable for now: counted, BOUNCE_SOFT_LIMIT in a row bounces
    BLOCKED = "blocked"  # the reader's domain refused us: nobody's fault, nothing changes
    COMPLAINT = "complaint"  # the reader pressed "this is spam": unsubscribed for good


class Bounce(Model):
    """One bounce or complaint about one copy: what came back, from where, and what it did."""

    __tablename__ = "bounce"
    __table_args__ = (
        sa.Index("ix_bounce_subscriber_at", "subscriber_id", "at"),
        sa.Index("ix_bounce_issue_kind", "issue_id", "kind"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow, index=True)
    # CASCADE on erase: an erased reader's bounces go with them (they name an address).
    subscriber_id: Mapped[int | None] = mapped_column(
        sa.ForeignKey("subscriber.id", ondelete="CASCADE")
    )
    issue_id: Mapped[int | None] = mapped_column(sa.ForeignKey("issue.id", ondelete="SET NULL"))
    delivery_id: Mapped[int | None] = mapped_column(
        sa.ForeignKey("delivery.id", ondelete="SET NULL"), index=True
    )
    kind: Mapped[BounceKind] = mapped_column(_enum(BounceKind, "bounce_kind"))
    # Where it came from: smtp (the answer while sending), dsn, arf, or a provider's name.
    source: Mapped[str] = mapped_column(sa.String(20), default="smtp")
    status_code: Mapped[str] = mapped_column(sa.String(12), default="")  # RFC 3463, "5.1.1"
    diagnostic: Mapped[str] = mapped_column(sa.String(500), default="")
    raw: Mapped[str] = mapped_column(sa.Text(), default="")  # the notification, size-capped
    undone_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    undone_by: Mapped[str] = mapped_column(sa.String(MAX_EMAIL_LENGTH), default="")
