"""Limits against floods: sign-ups per client, and confirmation mails per mailbox and domain.

Accepted sign-ups per client address are counted in Redis (a fixed window, INCR and EXPIRE):
losing those counts costs little, and past the limit a client is asked for proof of work
(``proof.py``), not refused. Confirmation mails are counted in the database, in the sign-up's
own transaction, so that they hold while Redis is down and across every alias of one inbox.

The mailbox limit refuses (the inbox's peace: the page says when to ask again). The domain's
ceiling never refuses: a mail past it is owed later, in the first window with room, so that a
stranger's flood at one domain delays a real reader's confirmation but never drops it.
"""

from __future__ import annotations

import functools
import hashlib
import ipaddress
import logging
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import cast

import redis
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from newsletter.models import ConfirmLimit, UTCDateTime, rowcount
from newsletter.subscribers.validate import mailbox_domain, mailbox_key

log = logging.getLogger(__name__)

# One mailbox (all its aliases together) gets at most one confirmation mail per cooldown and
# CONFIRM_PER_DAY a (UTC) day, as one address always did.
CONFIRM_COOLDOWN = timedelta(minutes=10)
CONFIRM_PER_DAY = 3
# One domain gets at most DOMAIN_CONFIRMATIONS per DOMAIN_WINDOW: far above a room of
# colleagues signing up together (45 in a minute), far below a flood at one company. Mails
# past it wait for a later window (see ``take_confirmation``).
DOMAIN_CONFIRMATIONS = 200
DOMAIN_WINDOW = 600  # seconds
# Large mailbox providers: many unrelated readers share each domain, so the ceiling that
# protects a company's domain would hold real sign-ups back. They get a far larger one (the
# mailbox limit still holds for each inbox). googlemail.com counts as gmail.com already.
LARGE_PROVIDERS = frozenset(
    {
        "gmail.com",
        "outlook.com",
        "hotmail.com",
        "hotmail.co.uk",
        "hotmail.de",
        "hotmail.fr",
        "live.com",
        "msn.com",
        "yahoo.com",
        "yahoo.co.uk",
        "yahoo.de",
        "yahoo.fr",
        "ymail.com",
        "aol.com",
        "icloud.com",
        "me.com",
        "mac.com",
        "gmx.de",
        "gmx.net",
        "gmx.at",
        "gmx.com",
        "web.de",
        "t-online.de",
        "freenet.de",
        "mail.ru",
        "yandex.ru",
        "proton.me",
        "protonmail.com",
        "zoho.com",
        "orange.fr",
        "free.fr",
        "libero.it",
        "qq.com",
        "163.com",
    }
)
LARGE_PROVIDER_CONFIRMATIONS = 5000
# Slots of a domain's ceiling are numbered from this day on: slot n is mailed in window
# n // ceiling after it (small enough numbers for a 32-bit column for decades).
SLOT_EPOCH = datetime(2026, 1, 1, tzinfo=UTC)
# Rows older than this no longer limit anything: the day and the window are over.
_KEEP = timedelta(days=2)


def client_key(address: str) -> str:
    """Return whom a client address counts as: IPv4 alone, IPv6 by its /64.

    One IPv6 subscriber line is given a whole /64 and picks any address in it at will;
    counting each address apart would give one machine 2**64 allowances.
    """
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return address
    if isinstance(ip, ipaddress.IPv6Address):
        mapped = ip.ipv4_mapped
        if mapped is not None:
            return str(mapped)
        return str(ipaddress.IPv6Network((ip, 64), strict=False))
    return str(ip)


def _window_key(name: str, who: str, seconds: int, now: float) -> str:
    return f"ratelimit:{name}:{client_key(who)}:{int(now // seconds)}"


def retry_after(limit: tuple[int, int], now: float | None = None) -> int:
    """Return the seconds until the current window of ``limit`` ends (at least 1)."""
    seconds = limit[1]
    now = time.time() if now is None else now
    return max(1, int(seconds - now % seconds))


def over_limit(client: redis.Redis, name: str, who: str, limit: tuple[int, int]) -> bool:
    """Say whether a client has used up the window's allowance under ``name``.

    Only what ``count`` counted is seen: refused input costs a client nothing. ``who`` is the
    client's address, counted as ``client_key`` says. When Redis does not answer the visitor is
    let through: losing a sign-up is worse than letting a few extra through while the queue is
    down anyway (the per-mailbox and per-domain limits in the database still hold).
    """
    hits, seconds = limit
    try:
        used = client.get(_window_key(name, who, seconds, time.time()))
    except redis.RedisError:
        log.warning("rate limit %s not checked: Redis did not answer", name)
        return False
    return used is not None and int(used) >= hits


def count(client: redis.Redis, name: str, who: str, limit: tuple[int, int]) -> None:
    """Count one accepted hit for a client under ``name`` (a fixed window, INCR and EXPIRE)."""
    seconds = limit[1]
    key = _window_key(name, who, seconds, time.time())
    try:
        pipe = client.pipeline(transaction=False)  # INCR and EXPIRE need no MULTI
        pipe.incr(key)
        pipe.expire(key, seconds + 1)
        pipe.execute()
    except redis.RedisError:
        log.warning("rate limit %s not counted: Redis did not answer", name)


def hit(client: redis.Redis, name: str, who: str, limit: tuple[int, int]) -> bool:
    """Count one hit for a client under ``name``; say whether it went past the allowance.

    ``over_limit`` and ``count`` in one round trip: INCR says how many hits the window holds
    with this one, so the hit is over the limit when it is past ``hits``, exactly when
    ``over_limit`` would have said so before it. Only call it for input that passed every
    check (refused input must cost the client nothing). A hit answered with a challenge is
    counted too; it changes nothing, the window being past its allowance already. When Redis
    does not answer the visitor is let through, as ``over_limit`` lets them.
    """
    hits, seconds = limit
    key = _window_key(name, who, seconds, time.time())
    try:
        pipe = client.pipeline(transaction=False)  # INCR and EXPIRE need no MULTI
        pipe.incr(key)
        pipe.expire(key, seconds + 1)
        used, _ = pipe.execute()
    except redis.RedisError:
        log.warning("rate limit %s not checked: Redis did not answer", name)
        return False
    return int(used) > hits


def domain_ceiling(domain: str) -> int:
    """Return how many confirmation mails ``domain`` gets per DOMAIN_WINDOW."""
    return LARGE_PROVIDER_CONFIRMATIONS if domain in LARGE_PROVIDERS else DOMAIN_CONFIRMATIONS


@dataclass(frozen=True)
class ConfirmQuota:
    """Where one confirmation mail to an address is counted, and the limits it must fit."""

    mailbox: str  # the ConfirmLimit key of the inbox
    domain: str  # the ConfirmLimit key of its domain
    day: datetime  # the mailbox's counted day
    window: datetime  # the domain's counted window
    cooled: datetime  # a mailbox last mailed at or before this may be mailed again
    ceiling: int  # the domain's mails per window
    first_slot: int  # the domain's first slot in the current window

    def slot_due(self, slot: int, now: datetime) -> datetime:
        """Return when the mail counted in the domain's ``slot`` may go (now, or later)."""
        window = slot // self.ceiling
        return max(now, SLOT_EPOCH + timedelta(seconds=window * DOMAIN_WINDOW))


def _key(kind: str, value: str) -> str:
    return f"{kind}:{hashlib.sha256(value.encode()).hexdigest()}"


def confirm_quota(email: str, now: datetime) -> ConfirmQuota:
    """Return the counters and limits a confirmation mail to a normalised address falls under."""
    now = now.astimezone(UTC)
    epoch = int(now.timestamp())
    domain = mailbox_domain(email)
    ceiling = domain_ceiling(domain)
    windows = max(0, int((now - SLOT_EPOCH).total_seconds()) // DOMAIN_WINDOW)
    return ConfirmQuota(
        mailbox=_key("m", mailbox_key(email)),
        domain=_key("d", domain),
        day=now.replace(hour=0, minute=0, second=0, microsecond=0),
        window=datetime.fromtimestamp(epoch - epoch % DOMAIN_WINDOW, UTC),
        cooled=now - CONFIRM_COOLDOWN,
        ceiling=ceiling,
        first_slot=windows * ceiling,
    )


# Built once per dialect: the SQLite sign-up path runs it on every new address.
@functools.cache
def take_statement(dialect: str) -> sa.Insert:
    """Count one mail under a key unless that breaks its limit; RETURNING says if it counted."""
    t = cast(sa.Table, ConfirmLimit.__table__)
    when = UTCDateTime()
    insert = (postgresql.insert if dialect == "postgresql" else sqlite.insert)(t).values(
        key=sa.bindparam("q_key"),
        period=sa.bindparam("q_period", type_=when),
        count=1,
        last_at=sa.bindparam("q_at", type_=when),
    )
    return insert.on_conflict_do_update(
        index_elements=[t.c.key],
        set_={
            "count": sa.case(
                (t.c.period == insert.excluded.period, t.c.count + 1), else_=sa.literal(1)
            ),
            "period": insert.excluded.period,
            "last_at": insert.excluded.last_at,
        },
        where=sa.and_(
            t.c.last_at <= sa.bindparam("q_cooled", type_=when),
            sa.or_(
                t.c.period != insert.excluded.period,
                t.c.count < sa.bindparam("q_cap", type_=sa.Integer()),
            ),
        ),
    ).returning(t.c.key)


# Built once per dialect, like take_statement's.
@functools.cache
def slot_statement(dialect: str) -> sa.Insert:
    """Take the domain's next free slot (never before the current window's first); one atomic
    upsert, so that concurrent sign-ups each get a slot of their own, none refused or lost."""
    t = cast(sa.Table, ConfirmLimit.__table__)
    when = UTCDateTime()
    first = sa.bindparam("q_first", type_=sa.Integer())
    insert = (postgresql.insert if dialect == "postgresql" else sqlite.insert)(t).values(
        key=sa.bindparam("q_key"),
        period=sa.bindparam("q_period", type_=when),
        count=first + 1,
        last_at=sa.bindparam("q_at", type_=when),
    )
    return insert.on_conflict_do_update(
        index_elements=[t.c.key],
        set_={
            "count": sa.case((t.c.count > first, t.c.count), else_=first) + 1,
            "period": insert.excluded.period,
            "last_at": insert.excluded.last_at,
        },
    ).returning(t.c.count)


def take_confirmation(
    session: Session,
    email: str,
    now: datetime,
    *,
    per_domain: bool = True,
    since: datetime | None = None,
) -> datetime | None:
    """Count one confirmation mail to the address's mailbox (and domain); say when it may go.

    None when the mailbox had its share (nothing is owed then). Otherwise the mail is counted
    under its domain's ceiling and owed at the returned time: now, or the start of the first
    window with room when the domain's current one is full.

    ``since`` is when the reader left the list, if they did: a mail sent before that answered
    an earlier sign-up, so the cooldown does not hold back the one that brings them back (the
    daily cap still does).

    Call it inside a transaction (a savepoint, if the caller must undo the count when its own
    write fails).
    """
    quota = confirm_quota(email, now)
    conn = session.connection()
    mailbox = {
        "q_key": quota.mailbox,
        "q_period": quota.day,
        "q_at": now,
        "q_cooled": quota.cooled if since is None else max(quota.cooled, since),
        "q_cap": CONFIRM_PER_DAY,
    }
    if conn.execute(take_statement(conn.dialect.name), mailbox).first() is None:
        return None
    if not per_domain:
        return now
    domain = {"q_key": quota.domain, "q_period": quota.window, "q_at": now}
    taken = conn.execute(slot_statement(conn.dialect.name), domain | {"q_first": quota.first_slot})
    return quota.slot_due(int(taken.scalar_one()) - 1, now)


def domain_due(session: Session, email: str, now: datetime) -> datetime:
    """Say when a confirmation mail to this address's domain would go if one were owed now.

    Read only: it tells a sign-up that reserved nothing the same time as one that did, so the
    answer never says whether the address is on the list.
    """
    quota = confirm_quota(email, now)
    used = session.scalar(sa.select(ConfirmLimit.count).where(ConfirmLimit.key == quota.domain))
    return quota.slot_due(max(used or 0, quota.first_slot), now)


def prune(session: Session, now: datetime) -> int:
    """Delete counters whose day and window are long over; return how many went."""
    return rowcount(
        session.execute(sa.delete(ConfirmLimit).where(ConfirmLimit.last_at < now - _KEEP))
    )
