"""Sign-ups: store a new address as pending, and reserve the confirmation mail it is owed.

A sign-up for an address already on the list changes nothing stored about the person (status,
name, version, history): anyone can type anyone's address. It may only reserve a confirmation
mail, which records that the mail is owed (``confirm_due_at``) and the name typed
(``confirm_name``, carried in the link); the person's own click on that link does the rest
(``state.confirm``).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import cast

import sqlalchemy as sa
from sqlalchemy.orm import Session, scoped_session
from sqlalchemy.orm.util import identity_key

from newsletter.models import (
    EventKind,
    Subscriber,
    SubscriberEvent,
    UTCDateTime,
    rowcount,
    utcnow,
)
from newsletter.subscribers import signup_sqlite
from newsletter.subscribers.limits import (
    CONFIRM_PER_DAY,
    DOMAIN_WINDOW,
    SLOT_EPOCH,
    confirm_quota,
    domain_due,
    take_confirmation,
)
from newsletter.subscribers.state import (
    CONFIRMABLE,
    IMPORTED_STAT,
    S,
    bump_stat,
)

# What anyone who signs up is told, by the API and the embedded form alike: the same words
# whether the address was new, pending or already on the list.
SIGNUP_ANSWER = {
    "status": "accepted",
    "message": "If the address can receive mail, a confirmation link is on its way.",
}


@dataclass
class SubscribeResult:
    subscriber_id: int
    send_confirmation: bool
    # The reservation the mail answers (names its job, and is when it may go: later than the
    # sign-up when the domain had its share); None when no mail is to be sent.
    due_at: datetime | None = None
    # When a confirmation to this address goes: the reservation's time, or, when none was
    # made, when one would have gone. The same either way, so it may be shown to anyone.
    mail_at: datetime | None = None
    # Whether the person is on the list but not (or no longer) confirmed: new, pending, or
    # left. Their own click on a confirmation is what makes anything of this sign-up count.
    awaiting: bool = False

    def mail_later(self, now: datetime) -> datetime | None:
        """Return when the confirmation goes if later than ``now`` (its domain had its share)."""
        at = self.mail_at
        return at if at is not None and at > now + _AT_ONCE else None


# A mail owed within this of a sign-up goes at once: nobody is told to wait for it.
_AT_ONCE = timedelta(seconds=1)


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
    if source == "import":
        bump_stat(session, IMPORTED_STAT, now.date())
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

    A new address is stored as pending. For one already known nothing stored about the person
    changes: at most a confirmation mail is reserved, carrying ``name`` to the confirmation.
    The caller answers the visitor the same way whatever happened here.
    """
    now = now or utcnow()
    new = _insert_new(session, email, name, ip, source, now)
    if new is not None:
        new_id, due = new
        return _result(session, new_id, due, email, now, awaiting=True)
    # Known address (or one another request inserted a moment ago): the general path.
    sub, created = get_or_create(session, email, name, ip, source, now)
    if sub.status not in CONFIRMABLE:
        return _result(session, sub.id, None, email, now, awaiting=False)
    sid = sub.id
    due = reserve_confirmation(
        session,
        sid,
        email,
        now,
        name=None if created else name or None,
        record=created,
        since=sub.unsubscribed_at if sub.status is S.UNSUBSCRIBED else None,
    )
    return _result(session, sid, due, email, now, awaiting=True)


def _result(
    session: Session,
    sid: int,
    due: datetime | None,
    email: str,
    now: datetime,
    *,
    awaiting: bool,
) -> SubscribeResult:
    mail_at = due if due is not None else domain_due(session, email, now)
    return SubscribeResult(sid, due is not None, due, mail_at, awaiting)


# The new-address path as one statement (PostgreSQL only): count the confirmation mail under
# the mailbox and domain limits (limits.take_confirmation), insert the subscriber with the
# reservation if it counted, write the history and the day's count. The limits are counted
# only for an address not yet stored, or its general path would find them used up.
_PG_NEW_ADDRESS = (
    sa.text(
        """
    WITH fresh AS (
        SELECT 1 AS one
        WHERE NOT EXISTS (SELECT 1 FROM subscriber WHERE email = :email)
    ), mailbox AS (
        INSERT INTO confirm_limit AS q (key, period, count, last_at)
        SELECT :mailbox_key, :day_start, 1, :at FROM fresh
        ON CONFLICT (key) DO UPDATE
        SET count = CASE WHEN q.period = EXCLUDED.period THEN q.count + 1 ELSE 1 END,
            period = EXCLUDED.period, last_at = EXCLUDED.last_at
        WHERE q.last_at <= :cooled AND (q.period <> EXCLUDED.period OR q.count < :per_day)
        RETURNING 1 AS one
    ), domain AS (
        INSERT INTO confirm_limit AS q (key, period, count, last_at)
        SELECT :domain_key, :window, :first_slot + 1, :at FROM mailbox
        ON CONFLICT (key) DO UPDATE
        SET count = GREATEST(q.count, :first_slot) + 1,
            period = EXCLUDED.period, last_at = EXCLUDED.last_at
        RETURNING count - 1 AS slot
    ), reserved AS (
        SELECT EXISTS (SELECT 1 FROM domain) AS yes,
               (SELECT GREATEST(:at, :slot_epoch + make_interval(
                    secs => (slot / :domain_cap) * :domain_window)) FROM domain) AS due
    ), new AS (
        INSERT INTO subscriber (email, name, status, version, created_at, updated_at,
                                signup_ip, source, confirm_sent_at, confirm_sent_day,
                                confirm_sent_count, confirm_due_at)
        SELECT :email, :name, 'pending', 1, :at, :at, :ip, :source,
               CASE WHEN yes THEN :at END, CASE WHEN yes THEN :day END,
               CASE WHEN yes THEN 1 ELSE 0 END, due
        FROM reserved
        ON CONFLICT (email) DO NOTHING
        RETURNING id, confirm_due_at IS NOT NULL AS reserved, confirm_due_at AS due
    ), history AS (
        INSERT INTO subscriber_event (subscriber_id, kind, at, ip, detail)
        SELECT new.id, e.kind, :at, e.ip, e.detail
        FROM new CROSS JOIN (
            VALUES (1, 'subscribed', CAST(:ip AS VARCHAR), CAST(:source AS VARCHAR)),
                   (2, 'confirmation_sent', NULL, '')
        ) AS e(n, kind, ip, detail)
        WHERE e.n = 1 OR new.reserved
        ORDER BY e.n
    ), stat AS (
        INSERT INTO daily_stat (day, kind, count)
        SELECT :day, 'subscribed', 1 FROM new
        ON CONFLICT (day, kind) DO UPDATE SET count = daily_stat.count + 1
    )
    SELECT id, due FROM new
    """
    )
    .bindparams(
        *(
            sa.bindparam(name, type_=UTCDateTime())
            for name in ("at", "day_start", "window", "cooled", "slot_epoch")
        ),
        sa.bindparam("day", type_=sa.Date()),
        *(sa.bindparam(name, type_=sa.Integer()) for name in ("first_slot", "domain_cap")),
        sa.bindparam("domain_window", type_=sa.Integer()),
    )
    .columns(sa.column("id", sa.Integer()), sa.column("due", UTCDateTime()))
)


def _insert_new(
    session: Session, email: str, name: str, ip: str | None, source: str, now: datetime
) -> tuple[int, datetime | None] | None:
    """Insert a brand-new pending subscriber; return its id and when its mail is owed (None:
    none is).

    The first confirmation is reserved as ``reserve_confirmation`` would, within the mailbox
    and domain limits. Return None, having changed nothing, when the address is already known.
    No ORM objects; webhooks are not told (a new sign-up is no status change).
    """
    today = now.date()
    bind = session.get_bind()
    if bind.dialect.name == "postgresql":
        # One statement (data-modifying CTEs; SQLite has none) does every write. When the
        # caller holds no transaction it runs in autocommit: the statement is its own
        # transaction, one round trip instead of BEGIN, statement and COMMIT.
        quota = confirm_quota(email, now)
        params = {"email": email, "name": name, "at": now, "day": today, "ip": ip}
        params |= {"source": source, "mailbox_key": quota.mailbox, "domain_key": quota.domain}
        params |= {"day_start": quota.day, "window": quota.window, "cooled": quota.cooled}
        params |= {"per_day": CONFIRM_PER_DAY, "domain_cap": quota.ceiling}
        params |= {"first_slot": quota.first_slot, "slot_epoch": SLOT_EPOCH}
        params |= {"domain_window": DOMAIN_WINDOW}
        current = session() if isinstance(session, scoped_session) else session
        if current.in_transaction():
            row = session.connection().execute(_PG_NEW_ADDRESS, params).first()
        else:
            autocommit = bind.engine.connect().execution_options(isolation_level="AUTOCOMMIT")
            with autocommit as conn:
                row = conn.execute(_PG_NEW_ADDRESS, params).first()
        return None if row is None else (int(row[0]), row[1])
    # SQLite has no data-modifying CTEs; the same writes go straight to its DBAPI cursor.
    return signup_sqlite.insert_new(session, email, name, ip, source, now)


_SUBSCRIBERS = cast(sa.Table, Subscriber.__table__)
_WHEN = _SUBSCRIBERS.c.created_at.type
# Keeps updated_at as it was: reserving a mail is no change to the person.
_RESERVE = (
    sa.update(_SUBSCRIBERS)
    .where(
        _SUBSCRIBERS.c.id == sa.bindparam("r_id"),
        _SUBSCRIBERS.c.status.in_([s.value for s in CONFIRMABLE]),
    )
    .values(
        confirm_sent_at=sa.bindparam("r_at", type_=_WHEN),
        confirm_due_at=sa.bindparam("r_due", type_=_WHEN),
        confirm_name=sa.bindparam("r_name", type_=sa.String()),
        confirm_sent_count=sa.case(
            (
                _SUBSCRIBERS.c.confirm_sent_day == sa.bindparam("r_day", type_=sa.Date()),
                _SUBSCRIBERS.c.confirm_sent_count + 1,
            ),
            else_=sa.literal(1),
        ),
        confirm_sent_day=sa.bindparam("r_day", type_=sa.Date()),
        updated_at=_SUBSCRIBERS.c.updated_at,
    )
)


def reserve_confirmation(
    session: Session,
    subscriber_id: int,
    email: str,
    now: datetime,
    *,
    name: str | None = None,
    record: bool = False,
    per_domain: bool = True,
    since: datetime | None = None,
) -> datetime | None:
    """Claim the right to mail one confirmation, within the mailbox and domain limits.

    Return when the mail is owed (now, or later when the domain had its share: the mail then
    waits for the reconciler), or None when the mailbox limit leaves nothing owed.

    A conditional UPDATE and counters in the same savepoint, so fifty simultaneous sign-ups of
    one address (or of fifty aliases of one inbox) send one mail, and a refusal leaves no
    trace. ``name`` is what the mail's link will set on confirming (None: keep the name);
    ``record`` adds the line to the person's history (new people only: a stranger's
    sign-up writes nothing about someone already on the list). ``per_domain`` off is for
    editors' imports, which are no flood. ``since``: when the reader left the list, if they
    did (see ``limits.take_confirmation``).
    """
    savepoint = session.begin_nested()
    due = take_confirmation(session, email, now, per_domain=per_domain, since=since)
    if due is None:
        savepoint.rollback()
        return None
    updated = session.execute(
        _RESERVE,
        {"r_id": subscriber_id, "r_at": now, "r_due": due, "r_name": name, "r_day": now.date()},
        execution_options={"synchronize_session": False},
    )
    if rowcount(updated) != 1:
        savepoint.rollback()
        return None
    savepoint.commit()
    if record:
        session.add(
            SubscriberEvent(subscriber_id=subscriber_id, kind=EventKind.CONFIRMATION_SENT, at=now)
        )
    held = session.identity_map.get(identity_key(Subscriber, subscriber_id))
    if held is not None:
        session.expire(held)
    return due
