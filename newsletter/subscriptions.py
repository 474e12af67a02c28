"""The subscription state machine: subscribe, confirm, unsubscribe, bounce, erase.

Every status change goes through ``_transition``, checked against ``TRANSITIONS``. Functions
take a SQLAlchemy session and plain values: no Flask request, no RQ.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from enum import StrEnum

import sqlalchemy as sa
from email_validator import EmailNotValidError, validate_email
from sqlalchemy.orm import Session, scoped_session

from .models import (
    DailyStat,
    EventKind,
    Subscriber,
    SubscriberEvent,
    SubscriberStatus,
    WebhookDelivery,
    utcnow,
)

S = SubscriberStatus

CONFIRM_COOLDOWN = timedelta(minutes=10)
CONFIRM_PER_DAY = 3
MAX_NAME = 100


class Action(StrEnum):
    SUBSCRIBE = "subscribe"
    CONFIRM = "confirm"
    UNSUBSCRIBE = "unsubscribe"
    BOUNCE = "bounce"
    IMPORT_CONFIRMED = "import_confirmed"


# (from, action) -> to. Anything not listed is not a change.
TRANSITIONS: dict[tuple[SubscriberStatus, Action], SubscriberStatus] = {
    (S.PENDING, Action.CONFIRM): S.CONFIRMED,
    (S.PENDING, Action.UNSUBSCRIBE): S.UNSUBSCRIBED,
    (S.PENDING, Action.BOUNCE): S.BOUNCED,
    (S.PENDING, Action.IMPORT_CONFIRMED): S.CONFIRMED,
    (S.CONFIRMED, Action.UNSUBSCRIBE): S.UNSUBSCRIBED,
    (S.CONFIRMED, Action.BOUNCE): S.BOUNCED,
    # Coming back always goes through confirmation again.
    (S.UNSUBSCRIBED, Action.SUBSCRIBE): S.PENDING,
    (S.BOUNCED, Action.SUBSCRIBE): S.PENDING,
}

# What each arrival is counted as in the daily stats and the person's history.
_EVENT_FOR = {
    S.PENDING: EventKind.SUBSCRIBED,
    S.CONFIRMED: EventKind.CONFIRMED,
    S.UNSUBSCRIBED: EventKind.UNSUBSCRIBED,
    S.BOUNCED: EventKind.BOUNCED,
}
_STAMP_FOR = {
    S.CONFIRMED: "confirmed_at",
    S.UNSUBSCRIBED: "unsubscribed_at",
    S.BOUNCED: "bounced_at",
}


# Called as listener(session, subscriber, new_status) after every status change, inside the
# same transaction (webhooks register here); keep them quick, they must not commit.
LISTENERS: list[Callable[[Session, Subscriber, SubscriberStatus], None]] = []


class InvalidInput(ValueError):
    """Input a person typed is not acceptable; the message says why, in plain words."""

    def __init__(self, field_name: str, message: str) -> None:
        super().__init__(message)
        self.field = field_name
        self.message = message


def normalize_email(raw: object, *, check_dns: bool = False) -> str:
    """Return the canonical, lower-cased form of an address or raise InvalidInput."""
    if not isinstance(raw, str) or not raw.strip():
        raise InvalidInput("email", "Please enter your email address.")
    value = raw.strip()
    if len(value) > 254:
        raise InvalidInput("email", "That email address is too long.")
    # U+FFFD and "%XX" are what undecodable bytes become in a form (werkzeug keeps the escape
    # as typed); "%" in a local part is legal but only ever seen in source routing and abuse.
    if any(c in value for c in '\r\n\0<>"(),;: \t\ufffd%') or "=?" in value:
        raise InvalidInput("email", "Please enter just the address, like name@example.org.")
    try:
        result = validate_email(
            value,
            check_deliverability=check_dns,
            allow_display_name=False,
            allow_quoted_local=False,
            allow_domain_literal=False,
            allow_smtputf8=True,
        )
    except EmailNotValidError as exc:
        raise InvalidInput("email", f"That email address is not valid: {exc}") from None
    normalized = result.normalized.lower()
    if len(normalized) > 254:
        raise InvalidInput("email", "That email address is too long.")
    return normalized


def clean_name(raw: object) -> str:
    """Return a display name fit to store, or raise InvalidInput."""
    if raw is None:
        return ""
    if not isinstance(raw, str):
        raise InvalidInput("name", "Please enter your name as plain text.")
    value = " ".join(raw.split(" ")).strip()
    if any(not c.isprintable() or c == "\ufffd" for c in value) or "=?" in value:
        raise InvalidInput("name", "Your name may not contain line breaks or control characters.")
    if len(value) > MAX_NAME:
        raise InvalidInput("name", f"Please keep your name under {MAX_NAME} characters.")
    return value


def bump_stat(session: Session, kind: str, day: date, n: int = 1) -> None:
    """Add ``n`` to the day's count of ``kind``, in one upsert that concurrent writers can share."""
    dialect = session.get_bind().dialect.name
    if dialect == "postgresql":
        from sqlalchemy.dialects.postgresql import insert
    else:
        from sqlalchemy.dialects.sqlite import insert  # type: ignore[assignment]
    stmt = insert(DailyStat).values(day=day, kind=kind, count=n)
    stmt = stmt.on_conflict_do_update(
        index_elements=["day", "kind"], set_={"count": DailyStat.count + n}
    )
    session.execute(stmt)


def _transition(
    session: Session,
    sub: Subscriber,
    action: Action,
    *,
    ip: str | None = None,
    detail: str = "",
    now: datetime | None = None,
) -> bool:
    """Apply ``action`` to ``sub`` if the table allows it; return whether the status changed."""
    target = TRANSITIONS.get((sub.status, action))
    if target is None:
        return False
    now = now or utcnow()
    sub.status = target
    sub.version += 1
    if stamp := _STAMP_FOR.get(target):
        setattr(sub, stamp, now)
    if target is S.PENDING:
        # A fresh start: the old confirm history no longer limits the new request.
        sub.confirmed_at = None
    kind = _EVENT_FOR[target]
    session.add(SubscriberEvent(subscriber=sub, kind=kind, at=now, ip=ip, detail=detail))
    bump_stat(session, kind.value, now.date())
    for listener in LISTENERS:
        listener(session, sub, target)
    return True


@dataclass
class SubscribeResult:
    subscriber_id: int
    send_confirmation: bool


def _get_or_create(
    session: Session, email: str, name: str, ip: str | None, source: str, now: datetime
) -> tuple[Subscriber, bool]:
    sub = session.scalar(sa.select(Subscriber).where(Subscriber.email == email))
    if sub is not None:
        return sub, False
    try:
        with session.begin_nested():
            sub = Subscriber(
                email=email,
                name=name,
                status=S.PENDING,
                signup_ip=ip,
                source=source,
                created_at=now,
                updated_at=now,
            )
            session.add(sub)
            session.flush()
    except sa.exc.IntegrityError:
        # Another request inserted the same address a moment ago: use that row.
        sub = session.scalar(sa.select(Subscriber).where(Subscriber.email == email))
        assert sub is not None
        return sub, False
    session.add(
        SubscriberEvent(subscriber=sub, kind=EventKind.SUBSCRIBED, at=now, ip=ip, detail=source)
    )
    bump_stat(session, EventKind.SUBSCRIBED.value, now.date())
    return sub, True


def subscribe(
    session: Session,
    email: str,
    name: str = "",
    *,
    ip: str | None = None,
    source: str = "form",
    now: datetime | None = None,
) -> SubscribeResult:
    """Record a sign-up for an already-normalised address; say whether to mail a confirmation.

    The caller answers the visitor the same way whatever happened here.
    """
    now = now or utcnow()
    new_id = _insert_new(session, email, name, ip, source, now)
    if new_id is not None:
        return SubscribeResult(new_id, True)
    # Known address (or one another request inserted a moment ago): the general path.
    sub, _created = _get_or_create(session, email, name, ip, source, now)
    if sub.status in (S.UNSUBSCRIBED, S.BOUNCED):
        _transition(session, sub, Action.SUBSCRIBE, ip=ip, detail=source, now=now)
        if name:
            sub.name = name
    if sub.status is not S.PENDING:
        return SubscribeResult(sub.id, False)
    session.flush()
    return SubscribeResult(sub.id, reserve_confirmation(session, sub.id, now))


# Statements of the new-address path, built once per dialect: building and cache-keying an
# insert per sign-up cost more than running it.
_NEW_ADDRESS_STATEMENTS: dict[str, tuple[sa.Insert, sa.Insert, sa.Insert]] = {}


# The same three writes as _new_address_statements, as one statement (PostgreSQL only).
_PG_NEW_ADDRESS = sa.text(
    """
    WITH new AS (
        INSERT INTO subscriber (email, name, status, version, created_at, updated_at,
                                signup_ip, source, confirm_sent_at, confirm_sent_day,
                                confirm_sent_count)
        VALUES (:email, :name, 'pending', 1, :at, :at, :ip, :source, :at, :day, 1)
        ON CONFLICT (email) DO NOTHING
        RETURNING id
    ), history AS (
        INSERT INTO subscriber_event (subscriber_id, kind, at, ip, detail)
        SELECT new.id, e.kind, :at, e.ip, e.detail
        FROM new CROSS JOIN (
            VALUES (1, 'subscribed', CAST(:ip AS VARCHAR), CAST(:source AS VARCHAR)),
                   (2, 'confirmation_sent', NULL, '')
        ) AS e(n, kind, ip, detail)
        ORDER BY e.n
    ), stat AS (
        INSERT INTO daily_stat (day, kind, count)
        SELECT :day, 'subscribed', 1 FROM new
        ON CONFLICT (day, kind) DO UPDATE SET count = daily_stat.count + 1
    )
    SELECT id FROM new
    """
).bindparams(
    sa.bindparam("at", type_=Subscriber.__table__.c.created_at.type),
    sa.bindparam("day", type_=sa.Date()),
)


def _new_address_statements(dialect: str) -> tuple[sa.Insert, sa.Insert, sa.Insert]:
    stmts = _NEW_ADDRESS_STATEMENTS.get(dialect)
    if stmts is None:
        if dialect == "postgresql":
            from sqlalchemy.dialects.postgresql import insert
        else:
            from sqlalchemy.dialects.sqlite import insert  # type: ignore[assignment]
        subs, events, stats = (
            Subscriber.__table__,
            SubscriberEvent.__table__,
            DailyStat.__table__,
        )
        add_subscriber = (
            insert(subs).on_conflict_do_nothing(index_elements=[subs.c.email]).returning(subs.c.id)
        )
        # Both history lines go in one executemany: a multi-row VALUES is not cacheable.
        add_events = sa.insert(events)
        bump = insert(stats).on_conflict_do_update(
            index_elements=[stats.c.day, stats.c.kind],
            set_={"count": stats.c.count + sa.bindparam("n", type_=stats.c.count.type)},
        )
        stmts = _NEW_ADDRESS_STATEMENTS[dialect] = (add_subscriber, add_events, bump)
    return stmts


def _insert_new(
    session: Session, email: str, name: str, ip: str | None, source: str, now: datetime
) -> int | None:
    """Insert a brand-new pending subscriber with its first confirmation reserved; return its id.

    Return None, having changed nothing, when the address is already known. A new row has no
    confirmation history, so the reservation ``reserve_confirmation`` would make always
    succeeds: it is written in the INSERT itself. No ORM objects; webhooks are not told (a
    new sign-up is no status change).
    """
    today = now.date()
    bind = session.get_bind()
    if bind.dialect.name == "postgresql":
        # One statement (data-modifying CTEs; SQLite has none) does all three writes. When the
        # caller holds no transaction it runs in autocommit: the statement is its own
        # transaction, one round trip instead of BEGIN, statement and COMMIT.
        params = {"email": email, "name": name, "at": now, "day": today, "ip": ip}
        params["source"] = source
        current = session() if isinstance(session, scoped_session) else session
        if current.in_transaction():
            new_id = session.connection().execute(_PG_NEW_ADDRESS, params).scalar()
        else:
            autocommit = bind.connect().execution_options(isolation_level="AUTOCOMMIT")
            with autocommit as conn:
                new_id = conn.execute(_PG_NEW_ADDRESS, params).scalar()
        return None if new_id is None else int(new_id)
    conn = session.connection()
    add_subscriber, add_events, bump = _new_address_statements(conn.dialect.name)
    new_id = conn.execute(
        add_subscriber,
        {
            "email": email,
            "name": name,
            "status": S.PENDING,
            "version": 1,
            "created_at": now,
            "updated_at": now,
            "signup_ip": ip,
            "source": source,
            "confirm_sent_at": now,
            "confirm_sent_day": today,
            "confirm_sent_count": 1,
        },
    ).scalar()
    if new_id is None:
        return None
    conn.execute(
        add_events,
        [
            {
                "subscriber_id": new_id,
                "kind": EventKind.SUBSCRIBED,
                "at": now,
                "ip": ip,
                "detail": source,
            },
            {
                "subscriber_id": new_id,
                "kind": EventKind.CONFIRMATION_SENT,
                "at": now,
                "ip": None,
                "detail": "",
            },
        ],
    )
    conn.execute(bump, {"day": today, "kind": EventKind.SUBSCRIBED.value, "count": 1, "n": 1})
    return int(new_id)


def reserve_confirmation(session: Session, subscriber_id: int, now: datetime) -> bool:
    """Claim the right to send one confirmation mail now (10-minute cooldown, 3 a day).

    A conditional UPDATE, so fifty simultaneous sign-ups of one address send one mail.
    """
    today = now.date()
    t = Subscriber.__table__
    stmt = (
        sa.update(t)
        .where(
            t.c.id == subscriber_id,
            t.c.status == S.PENDING.value,
            sa.or_(t.c.confirm_sent_at.is_(None), t.c.confirm_sent_at <= now - CONFIRM_COOLDOWN),
            sa.or_(
                t.c.confirm_sent_day.is_(None),
                t.c.confirm_sent_day != today,
                t.c.confirm_sent_count < CONFIRM_PER_DAY,
            ),
        )
        .values(
            confirm_sent_at=now,
            confirm_sent_count=sa.case(
                (t.c.confirm_sent_day == today, t.c.confirm_sent_count + 1), else_=1
            ),
            confirm_sent_day=today,
        )
        .execution_options(synchronize_session=False)
    )
    reserved = session.execute(stmt).rowcount == 1
    if reserved:
        session.add(
            SubscriberEvent(subscriber_id=subscriber_id, kind=EventKind.CONFIRMATION_SENT, at=now)
        )
    session.expire_all()
    return reserved


class ConfirmOutcome(StrEnum):
    CONFIRMED = "confirmed"  # just now: send the welcome mail
    ALREADY = "already"  # was confirmed before: nothing to do
    STALE = "stale"  # the link belongs to an earlier state (e.g. before an unsubscribe)
    UNKNOWN = "unknown"  # no such subscriber (erased)


def confirm(
    session: Session, subscriber_id: int, version: int, *, ip: str | None = None
) -> ConfirmOutcome:
    """Confirm the subscriber a confirm token names, if the token matches their current state."""
    sub = session.get(Subscriber, subscriber_id, with_for_update=True)
    if sub is None:
        return ConfirmOutcome.UNKNOWN
    if sub.status is S.CONFIRMED:
        return ConfirmOutcome.ALREADY
    if sub.version != version or sub.status is not S.PENDING:
        return ConfirmOutcome.STALE
    _transition(session, sub, Action.CONFIRM, ip=ip)
    return ConfirmOutcome.CONFIRMED


def unsubscribe(
    session: Session, subscriber_id: int, *, ip: str | None = None, detail: str = ""
) -> Subscriber | None:
    """Unsubscribe at once; harmless when already out. Return the subscriber, or None if erased."""
    sub = session.get(Subscriber, subscriber_id, with_for_update=True)
    if sub is None:
        return None
    _transition(session, sub, Action.UNSUBSCRIBE, ip=ip, detail=detail)
    return sub


def bounce(session: Session, subscriber_id: int, detail: str = "") -> bool:
    """Mark an address bounced after a permanent SMTP failure; return whether it changed."""
    sub = session.get(Subscriber, subscriber_id, with_for_update=True)
    if sub is None:
        return False
    return _transition(session, sub, Action.BOUNCE, detail=detail[:200])


def erase(session: Session, email: str) -> bool:
    """Delete every row that holds this person's address or name; return whether they existed."""
    sub = session.scalar(sa.select(Subscriber).where(Subscriber.email == email))
    if sub is None:
        return False
    # Webhook payloads copy the address: they go too.
    session.execute(
        sa.delete(WebhookDelivery).where(
            sa.or_(
                WebhookDelivery.payload.contains(f'"email": "{email}"'),
                WebhookDelivery.payload.contains(f'"subscriber_id": {sub.id},'),
                WebhookDelivery.payload.contains(f'"subscriber_id": {sub.id}}}'),
            )
        )
    )
    session.delete(sub)
    return True


# --- CSV import -------------------------------------------------------------------------------


@dataclass
class ImportReport:
    added: int = 0
    confirmed: int = 0
    unchanged: int = 0
    rows: int = 0
    errors: list[tuple[int, str]] = field(default_factory=list)
    # Pending subscribers who should be mailed a confirmation once the rows are committed.
    to_confirm: list[int] = field(default_factory=list)


class ImportFormatError(ValueError):
    """The file as a whole is not a usable CSV (no header, no email column, not UTF-8)."""


def read_csv_rows(text: str) -> Iterator[tuple[int, dict[str, str]]]:
    """Yield (line number, row) from CSV text with a header row that has an email column."""
    reader = csv.DictReader(io.StringIO(text.lstrip("\ufeff"), newline=""))
    if reader.fieldnames is None:
        raise ImportFormatError("The file is empty: expected a header row with email and name.")
    reader.fieldnames = [(f or "").strip().lower() for f in reader.fieldnames]
    if "email" not in reader.fieldnames:
        raise ImportFormatError("The header row has no 'email' column.")
    # Report the line a row starts on: a quoted field may span several lines.
    ended = reader.line_num
    for row in reader:
        yield ended + 1, row
        ended = reader.line_num


def import_rows(
    session: Session,
    rows: Iterable[tuple[int, dict[str, str]]],
    *,
    confirmed: bool,
    now: datetime | None = None,
    commit_every: int = 500,
    progress: object = None,
) -> ImportReport:
    """Add or update subscribers from CSV rows; bad rows are reported by line and skipped.

    Re-importing is harmless: existing people keep their status, except that ``confirmed``
    confirms a pending one. Nobody who unsubscribed or bounced is brought back.
    """
    report = ImportReport()
    now = now or utcnow()
    for line, row in rows:
        report.rows += 1
        try:
            email = normalize_email(row.get("email"))
            name = clean_name(row.get("name") or "")
        except InvalidInput as exc:
            report.errors.append((line, exc.message))
            continue
        sub, created = _get_or_create(session, email, name, None, "import", now)
        if created:
            report.added += 1
        if confirmed and sub.status is S.PENDING:
            _transition(session, sub, Action.IMPORT_CONFIRMED, detail="import", now=now)
            report.confirmed += 1
        elif not confirmed and sub.status is S.PENDING and created:
            report.to_confirm.append(sub.id)
        elif not created:
            report.unchanged += 1
        if report.rows % commit_every == 0:
            session.commit()
            if callable(progress):
                progress(report)
    session.commit()
    if callable(progress):
        progress(report)
    return report
