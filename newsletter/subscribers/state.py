"""The subscription state machine: subscribe, confirm, unsubscribe, bounce, erase.

Every status change goes through ``transition``, checked against ``TRANSITIONS``. Functions
take a SQLAlchemy session and plain values: no Flask request, no RQ.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from enum import StrEnum
from typing import Any, cast

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session, scoped_session

from newsletter.models import (
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


def _upsert(dialect: str) -> Any:
    """Return the dialect's INSERT, the one with ON CONFLICT."""
    return postgresql.insert if dialect == "postgresql" else sqlite.insert


def bump_stat(session: Session, kind: str, day: date, n: int = 1) -> None:
    """Add ``n`` to the day's count of ``kind``, in one upsert that concurrent writers can share."""
    stmt = _upsert(session.get_bind().dialect.name)(DailyStat).values(day=day, kind=kind, count=n)
    stmt = stmt.on_conflict_do_update(
        index_elements=["day", "kind"], set_={"count": DailyStat.count + n}
    )
    session.execute(stmt)


def transition(
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


def get_or_create(
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
    sub, _created = get_or_create(session, email, name, ip, source, now)
    if sub.status in (S.UNSUBSCRIBED, S.BOUNCED):
        transition(session, sub, Action.SUBSCRIBE, ip=ip, detail=source, now=now)
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
        insert = _upsert(dialect)
        subs, events, stats = (
            cast(sa.Table, Subscriber.__table__),
            cast(sa.Table, SubscriberEvent.__table__),
            cast(sa.Table, DailyStat.__table__),
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
            autocommit = bind.engine.connect().execution_options(isolation_level="AUTOCOMMIT")
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
    t = cast(sa.Table, Subscriber.__table__)
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
    reserved = cast("sa.CursorResult[Any]", session.execute(stmt)).rowcount == 1
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
    transition(session, sub, Action.CONFIRM, ip=ip)
    return ConfirmOutcome.CONFIRMED


def unsubscribe(
    session: Session, subscriber_id: int, *, ip: str | None = None, detail: str = ""
) -> Subscriber | None:
    """Unsubscribe at once; harmless when already out. Return the subscriber, or None if erased."""
    sub = session.get(Subscriber, subscriber_id, with_for_update=True)
    if sub is None:
        return None
    transition(session, sub, Action.UNSUBSCRIBE, ip=ip, detail=detail)
    return sub


def bounce(session: Session, subscriber_id: int, detail: str = "") -> bool:
    """Mark an address bounced after a permanent SMTP failure; return whether it changed."""
    sub = session.get(Subscriber, subscriber_id, with_for_update=True)
    if sub is None:
        return False
    return transition(session, sub, Action.BOUNCE, detail=detail[:200])


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
