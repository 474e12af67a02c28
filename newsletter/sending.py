"""The delivery engine: plan a send, claim deliveries, send them, record each outcome.

No Flask and no RQ here: every function takes a SQLAlchemy session (and what else it needs),
so a job, a command or a test can drive it. The database is the only source of truth:

* ``queue_issue`` snapshots the confirmed subscribers into one Delivery row each, in one
  INSERT ... SELECT, guarded by a conditional UPDATE of the issue (one send per issue).
* ``run_batch`` claims a few deliveries at a time with a conditional UPDATE and a lease,
  sends each over one reused SMTP connection, and commits each outcome right after the
  server answers. A worker killed mid-batch leaves rows in ``sending`` with a lease;
  ``reconcile`` takes them back when the lease runs out. The only copy that can be sent
  twice is the one in flight on a connection when its worker died.
"""

from __future__ import annotations

import binascii
import hashlib
import hmac
import random
import secrets
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from email.message import EmailMessage
from email.policy import SMTP
from email.utils import formatdate
from typing import Any, Protocol

import sqlalchemy as sa
from sqlalchemy.orm import Session

from .mail import Mailer, Rendered, SMTPPermanentError, SMTPTemporaryError
from .models import (
    Delivery,
    DeliveryStatus,
    Issue,
    IssueStatus,
    Subscriber,
    SubscriberStatus,
    utcnow,
)

D = DeliveryStatus
I = IssueStatus  # noqa: E741 - reads as a table of states below

QUEUEABLE = (I.DRAFT, I.READY, I.SCHEDULED)
# Rows claimed at a time: big enough that claiming costs little per message; unsubscribes are
# still seen quickly because the claimed rows are re-checked every RECHECK_SECONDS.
CLAIM_CHUNK = 200
RECHECK_SECONDS = 0.05
LEASE_EXPIRED = "lease expired; may have been sent"
UNSUBSCRIBE_PLACEHOLDER = "UNSUBSCRIBExTOKENxPLACEHOLDER"


# --- planning ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class QueueResult:
    started: bool
    audience: int
    batches: int
    status: IssueStatus


def queue_issue(session: Session, issue_id: int, now: datetime, batch_size: int) -> QueueResult:
    """Snapshot the confirmed subscribers into deliveries and mark the issue sending.

    Only one caller can move the issue out of draft/ready/scheduled, so twenty simultaneous
    calls start one send. The caller commits (or rolls back, e.g. when nobody is confirmed).
    """
    moved = session.execute(
        sa.update(Issue)
        .where(Issue.id == issue_id, Issue.status.in_(QUEUEABLE))
        .values(status=I.SENDING, queued_at=now, pause_reason="", updated_at=now)
        .execution_options(synchronize_session=False)
    ).rowcount
    if moved != 1:
        status = session.scalar(sa.select(Issue.status).where(Issue.id == issue_id))
        return QueueResult(False, 0, 0, status or I.CANCELLED)
    rank = sa.func.row_number().over(order_by=Subscriber.id)
    snapshot = sa.select(
        sa.literal(issue_id),
        Subscriber.id,
        (rank - 1) // batch_size,
        sa.literal(D.QUEUED.value),
        sa.literal(0),
        sa.literal(""),
    ).where(Subscriber.status == SubscriberStatus.CONFIRMED)
    session.execute(
        sa.insert(Delivery).from_select(
            ["issue_id", "subscriber_id", "batch", "status", "attempts", "last_error"], snapshot
        )
    )
    # Counted, not taken from rowcount: drivers disagree on it for INSERT ... SELECT.
    audience = session.scalar(sa.select(sa.func.count()).where(Delivery.issue_id == issue_id)) or 0
    batches = -(-audience // batch_size)
    session.execute(
        sa.update(Issue)
        .where(Issue.id == issue_id)
        .values(audience=audience, batches=batches)
        .execution_options(synchronize_session=False)
    )
    return QueueResult(True, audience, batches, I.SENDING)


# --- claiming and recording -------------------------------------------------------------------


@dataclass(frozen=True)
class Claimed:
    delivery_id: int
    subscriber_id: int
    email: str
    attempts: int


def skip_unsubscribed(session: Session, issue_id: int, batch: int | None = None) -> int:
    """Mark queued deliveries whose subscriber is no longer confirmed (or erased) as skipped."""
    confirmed = sa.exists().where(
        Subscriber.id == Delivery.subscriber_id, Subscriber.status == SubscriberStatus.CONFIRMED
    )
    where = [Delivery.issue_id == issue_id, Delivery.status == D.QUEUED, ~confirmed]
    if batch is not None:
        where.append(Delivery.batch == batch)
    return session.execute(
        sa.update(Delivery)
        .where(*where)
        .values(status=D.SKIPPED, last_error="not subscribed at send time")
        .execution_options(synchronize_session=False)
    ).rowcount


def claim(
    session: Session,
    issue_id: int,
    batch: int,
    claim_id: str,
    now: datetime,
    lease_seconds: float,
    limit: int = CLAIM_CHUNK,
) -> list[Claimed]:
    """Lease up to ``limit`` due deliveries of a batch to ``claim_id``; return them.

    The UPDATE re-checks everything it depends on (issue still sending, delivery still queued
    and due, subscriber still confirmed), so two workers never hold the same row.
    """
    skip_unsubscribed(session, issue_id, batch)
    due = sa.or_(Delivery.next_attempt_at.is_(None), Delivery.next_attempt_at <= now)
    confirmed = sa.exists().where(
        Subscriber.id == Delivery.subscriber_id, Subscriber.status == SubscriberStatus.CONFIRMED
    )
    candidates = (
        sa.select(Delivery.id)
        .where(Delivery.issue_id == issue_id, Delivery.batch == batch)
        .where(Delivery.status == D.QUEUED, due, confirmed)
        .order_by(Delivery.id)
        .limit(limit)
    )
    if session.get_bind().dialect.name == "postgresql":
        candidates = candidates.with_for_update(skip_locked=True)
    sending = sa.exists().where(Issue.id == issue_id, Issue.status == I.SENDING)
    session.execute(
        sa.update(Delivery)
        .where(Delivery.id.in_(candidates.scalar_subquery()), Delivery.status == D.QUEUED, sending)
        .values(
            status=D.SENDING,
            claimed_by=claim_id,
            lease_until=now + timedelta(seconds=lease_seconds),
        )
        .execution_options(synchronize_session=False)
    )
    rows = session.execute(
        sa.select(Delivery.id, Delivery.subscriber_id, Subscriber.email, Delivery.attempts)
        .join(Subscriber, Subscriber.id == Delivery.subscriber_id)
        .where(
            Delivery.issue_id == issue_id,
            Delivery.status == D.SENDING,
            Delivery.claimed_by == claim_id,
        )
        .order_by(Delivery.id)
    ).all()
    return [Claimed(r[0], r[1], r[2], r[3]) for r in rows]


def _mine(delivery_id: int, claim_id: str) -> tuple[Any, ...]:
    return (
        Delivery.id == delivery_id,
        Delivery.status == D.SENDING,
        Delivery.claimed_by == claim_id,
    )


_DELIVERY = Delivery.__table__
# Built once: this runs once per message, and building an ORM UPDATE each time cost more CPU
# than handing the message to the SMTP server (see bench/RESULTS.md).
_RECORD_SENT = (
    sa.update(_DELIVERY)
    .where(
        _DELIVERY.c.id == sa.bindparam("delivery_id"),
        _DELIVERY.c.status == D.SENDING,
        _DELIVERY.c.claimed_by == sa.bindparam("claim_id"),
    )
    .values(
        status=D.SENT,
        sent_at=sa.bindparam("now", type_=_DELIVERY.c.sent_at.type),
        lease_until=None,
        attempts=_DELIVERY.c.attempts + 1,
    )
)


def record_sent(session: Session, delivery_id: int, claim_id: str, now: datetime) -> bool:
    """Record that the server accepted the message; False if the lease was lost meanwhile."""
    params = {"delivery_id": delivery_id, "claim_id": claim_id, "now": now}
    return session.connection().execute(_RECORD_SENT, params).rowcount == 1


def retry_delay(attempts: int, base: float) -> float:
    """Return the wait before attempt ``attempts + 1``: exponential, with a little jitter."""
    return base * (2**attempts) * random.uniform(0.9, 1.1)


def record_temporary(
    session: Session,
    delivery: Claimed,
    claim_id: str,
    now: datetime,
    error: str,
    *,
    max_attempts: int,
    retry_base: float,
) -> DeliveryStatus:
    """Put the delivery back for a later retry, or fail it when attempts are used up."""
    attempts = delivery.attempts + 1
    if attempts >= max_attempts:
        values: dict[str, Any] = {"status": D.FAILED, "lease_until": None}
        outcome = D.FAILED
    else:
        wait = retry_delay(delivery.attempts, retry_base)
        values = {
            "status": D.QUEUED,
            "lease_until": None,
            "claimed_by": None,
            "next_attempt_at": now + timedelta(seconds=wait),
        }
        outcome = D.QUEUED
    session.execute(
        sa.update(Delivery)
        .where(*_mine(delivery.delivery_id, claim_id))
        .values(attempts=attempts, last_error=error[:300], **values)
        .execution_options(synchronize_session=False)
    )
    return outcome


def record_permanent(
    session: Session, delivery: Claimed, claim_id: str, now: datetime, error: str
) -> bool:
    """Fail the delivery for good and mark the address bounced (excluded from later sends)."""
    from .subscriptions import bounce

    changed = session.execute(
        sa.update(Delivery)
        .where(*_mine(delivery.delivery_id, claim_id))
        .values(
            status=D.FAILED,
            lease_until=None,
            attempts=Delivery.attempts + 1,
            last_error=error[:300],
        )
        .execution_options(synchronize_session=False)
    ).rowcount
    bounce(session, delivery.subscriber_id, detail=f"issue delivery refused: {error}")
    return changed == 1


def release(session: Session, claim_id: str, delivery_ids: Iterable[int]) -> int:
    """Give claimed deliveries back untouched (a graceful stop, a pause)."""
    ids = list(delivery_ids)
    if not ids:
        return 0
    return session.execute(
        sa.update(Delivery)
        .where(Delivery.id.in_(ids), Delivery.status == D.SENDING, Delivery.claimed_by == claim_id)
        .values(status=D.QUEUED, lease_until=None, claimed_by=None)
        .execution_options(synchronize_session=False)
    ).rowcount


def extend_lease(session: Session, claim_id: str, now: datetime, lease_seconds: float) -> None:
    """Push back the lease of what a slow worker still holds."""
    session.execute(
        sa.update(Delivery)
        .where(Delivery.status == D.SENDING, Delivery.claimed_by == claim_id)
        .values(lease_until=now + timedelta(seconds=lease_seconds))
        .execution_options(synchronize_session=False)
    )


# --- the send's life: finish, pause, resume, cancel, reconcile ---------------------------------


# Called as listener(session, issue_id) when an issue becomes sent (webhooks register here).
ISSUE_SENT_LISTENERS: list[Callable[[Session, int], None]] = []


def finish_if_done(session: Session, issue_id: int, now: datetime) -> bool:
    """Mark a sending issue sent once no delivery is queued or in flight."""
    open_work = sa.exists().where(
        Delivery.issue_id == issue_id, Delivery.status.in_((D.QUEUED, D.SENDING))
    )
    finished = (
        session.execute(
            sa.update(Issue)
            .where(Issue.id == issue_id, Issue.status == I.SENDING, ~open_work)
            .values(status=I.SENT, sent_at=now, updated_at=now)
            .execution_options(synchronize_session=False)
        ).rowcount
        == 1
    )
    if finished:
        for listener in ISSUE_SENT_LISTENERS:  # e.g. webhooks; same transaction
            listener(session, issue_id)
    return finished


def _move(session: Session, issue_id: int, frm: tuple[IssueStatus, ...], **values: Any) -> bool:
    return (
        session.execute(
            sa.update(Issue)
            .where(Issue.id == issue_id, Issue.status.in_(frm))
            .values(updated_at=utcnow(), **values)
            .execution_options(synchronize_session=False)
        ).rowcount
        == 1
    )


def pause(session: Session, issue_id: int, reason: str = "paused by an editor") -> bool:
    """Stop handing out deliveries of a sending issue; what is in flight finishes."""
    return _move(session, issue_id, (I.SENDING,), status=I.PAUSED, pause_reason=reason[:300])


def resume(session: Session, issue_id: int) -> bool:
    """Let a paused issue's deliveries be claimed again (the caller re-dispatches batches)."""
    # A retry that was waiting keeps its time; nothing else changes, so nobody is skipped.
    return _move(session, issue_id, (I.PAUSED,), status=I.SENDING, pause_reason="")


def cancel(session: Session, issue_id: int) -> bool:
    """Cancel an issue: queued deliveries become skipped ('cancelled'); in-flight ones finish."""
    moved = _move(
        session,
        issue_id,
        (I.DRAFT, I.READY, I.SCHEDULED, I.SENDING, I.PAUSED),
        status=I.CANCELLED,
        scheduled_at=None,
    )
    if moved:
        _skip_cancelled(session, issue_id)
    return moved


def _skip_cancelled(session: Session, issue_id: int) -> int:
    return session.execute(
        sa.update(Delivery)
        .where(Delivery.issue_id == issue_id, Delivery.status == D.QUEUED)
        .values(status=D.SKIPPED, last_error="cancelled", claimed_by=None, lease_until=None)
        .execution_options(synchronize_session=False)
    ).rowcount


@dataclass
class Reconciliation:
    reclaimed: int = 0
    finished: list[int] = field(default_factory=list)
    due: list[tuple[int, int]] = field(default_factory=list)  # (issue_id, batch) with work due


def reconcile(session: Session, now: datetime) -> Reconciliation:
    """Take back expired leases, close finished sends, and list batches with work due now."""
    report = Reconciliation()
    live = session.execute(
        sa.select(Issue.id, Issue.status).where(
            Issue.status.in_((I.SENDING, I.PAUSED, I.CANCELLED)), Issue.queued_at.is_not(None)
        )
    ).all()
    for issue_id, status in live:
        report.reclaimed += session.execute(
            sa.update(Delivery)
            .where(
                Delivery.issue_id == issue_id,
                Delivery.status == D.SENDING,
                Delivery.lease_until < now,
            )
            .values(status=D.QUEUED, lease_until=None, claimed_by=None, last_error=LEASE_EXPIRED)
            .execution_options(synchronize_session=False)
        ).rowcount
        if status is I.CANCELLED:
            _skip_cancelled(session, issue_id)
            continue
        if status is not I.SENDING:
            continue
        if finish_if_done(session, issue_id, now):
            report.finished.append(issue_id)
            continue
        due = sa.or_(Delivery.next_attempt_at.is_(None), Delivery.next_attempt_at <= now)
        batches = session.scalars(
            sa.select(Delivery.batch)
            .where(Delivery.issue_id == issue_id, Delivery.status == D.QUEUED, due)
            .distinct()
            .order_by(Delivery.batch)
        ).all()
        report.due.extend((issue_id, b) for b in batches)
    return report


def batches_with_work(session: Session, issue_id: int) -> list[int]:
    """Return the batches of an issue that still have queued deliveries."""
    return list(
        session.scalars(
            sa.select(Delivery.batch)
            .where(Delivery.issue_id == issue_id, Delivery.status == D.QUEUED)
            .distinct()
            .order_by(Delivery.batch)
        ).all()
    )


def next_retry_at(session: Session, issue_id: int, batch: int) -> datetime | None:
    """Return when the batch's earliest waiting retry falls due."""
    return session.scalar(
        sa.select(sa.func.min(Delivery.next_attempt_at)).where(
            Delivery.issue_id == issue_id, Delivery.batch == batch, Delivery.status == D.QUEUED
        )
    )


# --- progress -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Progress:
    status: IssueStatus
    audience: int
    counts: dict[str, int]
    rate: float  # messages per second over the last minute
    eta_seconds: float | None
    pause_reason: str
    possible_duplicates: int

    @property
    def done(self) -> int:
        return self.counts["sent"] + self.counts["failed"] + self.counts["skipped"]

    def as_dict(self) -> dict[str, Any]:
        return {
            "status": self.status.value,
            "audience": self.audience,
            **self.counts,
            "done": self.done,
            "rate_per_s": round(self.rate, 2),
            "eta_seconds": None if self.eta_seconds is None else round(self.eta_seconds),
            "pause_reason": self.pause_reason,
            "possible_duplicates": self.possible_duplicates,
        }


def progress(session: Session, issue_id: int, now: datetime, window: float = 60.0) -> Progress:
    """Count an issue's deliveries per status, with the recent rate and an ETA."""
    issue = session.execute(
        sa.select(Issue.status, Issue.audience, Issue.pause_reason).where(Issue.id == issue_id)
    ).one()
    counts = {s.value: 0 for s in D}
    for status, n in session.execute(
        sa.select(Delivery.status, sa.func.count())
        .where(Delivery.issue_id == issue_id)
        .group_by(Delivery.status)
    ):
        counts[DeliveryStatus(status).value] = n
    since = now - timedelta(seconds=window)
    recent = session.scalar(
        sa.select(sa.func.count()).where(
            Delivery.issue_id == issue_id, Delivery.status == D.SENT, Delivery.sent_at >= since
        )
    )
    first = session.scalar(
        sa.select(sa.func.min(Delivery.sent_at)).where(
            Delivery.issue_id == issue_id, Delivery.sent_at >= since
        )
    )
    span = max((now - first).total_seconds(), 1.0) if first else window
    rate = (recent or 0) / span
    left = counts["queued"] + counts["sending"]
    eta = left / rate if rate > 0 and left else (0.0 if not left else None)
    dupes = session.scalar(
        sa.select(sa.func.count()).where(
            Delivery.issue_id == issue_id,
            Delivery.status == D.SENT,
            Delivery.last_error == LEASE_EXPIRED,
        )
    )
    return Progress(
        IssueStatus(issue.status), issue.audience, counts, rate, eta, issue.pause_reason, dupes or 0
    )


# --- the message: render once, personalise per recipient ------------------------------------------


def message_id_for(issue_id: int, subscriber_id: int, secret: bytes, domain: str) -> str:
    """Return the Message-ID of an issue's copy for one subscriber: the same on every resend."""
    return MessageIds(issue_id, secret, domain)(subscriber_id)


class MessageIds:
    """``message_id_for`` for one issue, with the HMAC keyed once (a copy per message)."""

    def __init__(self, issue_id: int, secret: bytes, domain: str) -> None:
        self.issue_id = issue_id
        self.domain = domain
        self._mac = hmac.new(secret, digestmod=hashlib.sha256)

    def __call__(self, subscriber_id: int) -> str:
        mac = self._mac.copy()
        mac.update(f"{self.issue_id}.{subscriber_id}".encode())
        digest = mac.hexdigest()
        return f"<issue-{self.issue_id}.sub-{subscriber_id}.{digest[:8]}@{self.domain}>"


def _crlf(text: str) -> str:
    return text.replace("\r\n", "\n").replace("\r", "\n").replace("\n", "\r\n")


def _header_block(headers: list[tuple[str, str]]) -> bytes:
    # Let the stdlib fold and encode these once per issue; only their bytes are reused.
    msg = EmailMessage(policy=SMTP)
    for key, value in headers:
        msg[key] = value
    return msg.as_bytes().split(b"\r\n\r\n", 1)[0] + b"\r\n"


class IssueMessage:
    """An issue rendered once; ``bytes_for`` personalises a copy in a few microseconds."""

    def __init__(
        self,
        mailer: Mailer,
        rendered: Rendered,
        *,
        issue_id: int,
        unsubscribe_base: str,
        secret: bytes,
        list_id: str,
    ) -> None:
        self.mailer = mailer
        self.issue_id = issue_id
        self.unsubscribe_base = unsubscribe_base  # BASE_URL + "/unsubscribe/"
        self.secret = secret
        self.domain = mailer.from_domain
        self._message_id = MessageIds(issue_id, secret, self.domain)
        placeholder = unsubscribe_base + UNSUBSCRIBE_PLACEHOLDER
        # The fixed text around each unsubscribe URL is quoted-printable encoded once here;
        # only the URL is encoded per copy (see _qp_pieces).
        self._text = _qp_pieces(_crlf(rendered.text).split(placeholder))
        self._html = _qp_pieces(_crlf(rendered.html).split(placeholder))
        self._date_second = -1
        self._date = b""
        self.boundary = "=_totw_" + secrets.token_hex(12)
        self._head = _header_block(
            [
                ("From", mailer.mail_from),
                ("Subject", rendered.subject),
                ("MIME-Version", "1.0"),
                ("List-Id", list_id),
                ("List-Unsubscribe-Post", "List-Unsubscribe=One-Click"),
                ("Content-Type", f'multipart/alternative; boundary="{self.boundary}"'),
            ]
        )
        b = self.boundary.encode()
        self._text_open = (
            b"\r\n--" + b + b'\r\nContent-Type: text/plain; charset="utf-8"\r\n'
            b"Content-Transfer-Encoding: quoted-printable\r\n\r\n"
        )
        self._html_open = (
            b"\r\n--" + b + b'\r\nContent-Type: text/html; charset="utf-8"\r\n'
            b"Content-Transfer-Encoding: quoted-printable\r\n\r\n"
        )
        self._close = b"\r\n--" + b + b"--\r\n"

    def _date_header(self) -> bytes:
        second = int(time.time())
        if second != self._date_second:
            self._date = formatdate(second, usegmt=True).encode()
            self._date_second = second
        return self._date

    def bytes_for(
        self, subscriber_id: int, email: str, token: str, *, message_id: str | None = None
    ) -> bytes:
        """Return the complete, signed-if-configured message for one subscriber."""
        url = (self.unsubscribe_base + token).encode()
        try:
            to = email.encode("ascii")
        except UnicodeEncodeError:
            to = _header_block([("To", email)])[4:-2]
        mid = message_id or self._message_id(subscriber_id)
        qp_url = b"=\r\n" + _qp(url) + b"=\r\n"
        data = b"".join(
            (
                self._head,
                b"To: ", to, b"\r\n",
                b"Date: ", self._date_header(), b"\r\n",
                b"Message-ID: ", mid.encode(), b"\r\n",
                b"List-Unsubscribe: <", url, b">\r\n",
                b"\r\nThis is a multi-part message in MIME format.\r\n",
                self._text_open,
                qp_url.join(self._text),
                self._html_open,
                qp_url.join(self._html),
                self._close,
            )
        )  # fmt: skip
        return self.mailer.sign(data)


def _qp_pieces(pieces: list[str]) -> list[bytes]:
    """Quoted-printable encode the text between URLs, each piece on its own.

    The per-copy URL is joined in wrapped in soft line breaks (``=`` CRLF), which decode to
    nothing: the decoded body is the same as encoding the whole text at once, and no encoded
    line grows past 76 characters however the pieces and the URL fall on a line.
    """
    return [_qp(p.encode()) for p in pieces]


def _qp(data: bytes) -> bytes:
    encoded = binascii.b2a_qp(data, istext=True)
    # b2a_qp ends its soft line breaks the way the input ends lines, LF when it has none;
    # our input's newlines are all CRLF already, so a bare LF here is a soft break's.
    return encoded if b"\r\n" in data else encoded.replace(b"\n", b"\r\n")


# --- one batch ------------------------------------------------------------------------------------


class Sender(Protocol):
    def send(self, to: str, data: bytes) -> None: ...


class FailureStreak(Protocol):
    """Consecutive failed messages of an issue, counted across every worker that sends it."""

    def failed(self, issue_id: int) -> int: ...  # count this failure; return the streak
    # A message got through: the streak ends. Called for every message, so it must be cheap.
    def succeeded(self, issue_id: int) -> None: ...
    def clear(self, issue_id: int) -> None: ...  # the issue was paused: start counting afresh


class LocalStreak:
    """A failure streak kept in this process only (one worker, or a test)."""

    def __init__(self) -> None:
        self.counts: dict[int, int] = {}

    def failed(self, issue_id: int) -> int:
        """Count one failure; return the streak."""
        self.counts[issue_id] = self.counts.get(issue_id, 0) + 1
        return self.counts[issue_id]

    def succeeded(self, issue_id: int) -> None:
        """End the streak."""
        self.counts[issue_id] = 0

    def clear(self, issue_id: int) -> None:
        """Forget the streak."""
        self.counts.pop(issue_id, None)


@dataclass
class SendSettings:
    lease_seconds: float = 300.0
    max_attempts: int = 6
    retry_base: float = 60.0
    pause_after: int = 50
    # Wait inside the job for a retry due this soon; a later one is left to the reconciler.
    short_wait: float = 2.0
    claim_chunk: int = CLAIM_CHUNK
    # How stale the claimed rows' subscriber status may get before it is read again: whoever
    # unsubscribes more than this before their turn is skipped, however big the chunk.
    recheck_seconds: float = RECHECK_SECONDS


@dataclass
class BatchReport:
    sent: int = 0
    failed: int = 0
    retried: int = 0
    released: int = 0
    skipped: int = 0
    stopped: bool = False
    paused: bool = False
    finished: bool = False
    lost_leases: int = 0


class _Prepared:
    """A Core statement compiled once for a DBAPI cursor, its constant parameters processed."""

    def __init__(self, stmt: Any, dialect: sa.Dialect, **sample: Any) -> None:
        compiled = stmt.compile(dialect=dialect)
        self.sql = compiled.string
        self.order = compiled.positiontup
        self.procs = {}
        for name, bind in compiled.binds.items():
            proc = bind.type.dialect_impl(dialect).bind_processor(dialect)
            if proc is not None:
                self.procs[name] = proc
        self.base = {
            k: self.procs[k](v) if k in self.procs else v
            for k, v in compiled.construct_params(sample).items()
        }

    def params(self, **values: Any) -> Any:
        p = dict(self.base)
        for k, v in values.items():
            proc = self.procs.get(k)
            p[k] = proc(v) if proc is not None else v
        return tuple(p[k] for k in self.order) if self.order else p


_SUBSCRIBER = Subscriber.__table__
# issue_id and batch lead to ix_delivery_issue_batch_status: without them this ran every 50 ms
# as a scan of the whole delivery table.
_NO_LONGER_CONFIRMED = sa.select(_DELIVERY.c.id).where(
    _DELIVERY.c.issue_id == sa.bindparam("issue_id"),
    _DELIVERY.c.batch == sa.bindparam("batch"),
    _DELIVERY.c.claimed_by == sa.bindparam("claim_id"),
    _DELIVERY.c.status == D.SENDING,
    ~sa.exists().where(
        _SUBSCRIBER.c.id == _DELIVERY.c.subscriber_id,
        _SUBSCRIBER.c.status == SubscriberStatus.CONFIRMED,
    ),
)


class Recorder:
    """Record acceptances on one DBAPI connection held for the whole batch, in autocommit.

    Each accepted message is still its own committed transaction (that is what bounds a
    crash's duplicates to the message in flight), but a single UPDATE in autocommit mode is
    that transaction: one statement, one round trip, no BEGIN or COMMIT around it, and no
    Session around it either (that cost ~150 µs of Python per message, as much as smtplib).
    On SQLite a lone UPDATE takes the write lock at its start and waits out the busy timeout
    like BEGIN IMMEDIATE; the caller keeps the Session free of open transactions meanwhile,
    so this connection never waits on its own process.
    """

    def __init__(self, session: Session) -> None:
        engine = session.get_bind()
        dialect = engine.dialect
        sample = {"delivery_id": 0, "claim_id": "", "now": utcnow()}
        self._sent = _Prepared(_RECORD_SENT, dialect, **sample)
        self._gone = _Prepared(_NO_LONGER_CONFIRMED, dialect, issue_id=0, batch=0, claim_id="")
        self._closing: Any
        if dialect.name == "sqlite":
            # The app's SQLite connections run with the driver's own transactions off
            # (isolation_level=None): every statement outside BEGIN is autocommitted.
            self._closing = engine.raw_connection()
            conn = self._closing
        else:
            # The pool puts the isolation level back when this connection returns.
            self._closing = engine.connect().execution_options(isolation_level="AUTOCOMMIT")
            conn = self._closing.connection
        self._cur = conn.cursor()

    def sent(self, delivery_id: int, claim_id: str, now: datetime) -> bool:
        """Commit one acceptance; False if the lease was lost meanwhile."""
        self._cur.execute(
            self._sent.sql, self._sent.params(delivery_id=delivery_id, claim_id=claim_id, now=now)
        )
        return self._cur.rowcount == 1

    def no_longer_confirmed(self, issue_id: int, batch: int, claim_id: str) -> set[int]:
        """Return the deliveries held by ``claim_id`` whose subscriber left meanwhile."""
        params = self._gone.params(issue_id=issue_id, batch=batch, claim_id=claim_id)
        self._cur.execute(self._gone.sql, params)
        return {row[0] for row in self._cur.fetchall()}

    def close(self) -> None:
        """Give the connection back to the pool."""
        try:
            self._cur.close()
        finally:
            self._closing.close()


def skip_claimed(session: Session, claim_id: str, delivery_ids: Iterable[int]) -> int:
    """Skip claimed deliveries whose subscriber is no longer confirmed."""
    ids = list(delivery_ids)
    if not ids:
        return 0
    return session.execute(
        sa.update(Delivery)
        .where(Delivery.id.in_(ids), Delivery.status == D.SENDING, Delivery.claimed_by == claim_id)
        .values(status=D.SKIPPED, lease_until=None, last_error="not subscribed at send time")
        .execution_options(synchronize_session=False)
    ).rowcount


def run_batch(
    session: Session,
    issue_id: int,
    batch: int,
    *,
    worker: str,
    message: Callable[[], IssueMessage],
    token_for: Callable[[int], str],
    smtp: Sender,
    settings: SendSettings,
    streak: FailureStreak | None = None,
    should_stop: Callable[[], bool] = lambda: False,
    throttle: Callable[[], None] | None = None,
    heartbeat: Callable[[], None] = lambda: None,
) -> BatchReport:
    """Send one batch of an issue: claim a chunk, send each message, commit each outcome."""
    streak = streak if streak is not None else LocalStreak()
    session.commit()  # the Recorder writes on its own connection: hold no transaction here
    recorder = Recorder(session)
    try:
        report = _run_batch(
            session, recorder, issue_id, batch, worker, message, token_for, smtp, settings,
            streak, should_stop, throttle, heartbeat,
        )  # fmt: skip
    finally:
        recorder.close()
    return report


def _run_batch(
    session: Session,
    recorder: Recorder,
    issue_id: int,
    batch: int,
    worker: str,
    message: Callable[[], IssueMessage],
    token_for: Callable[[int], str],
    smtp: Sender,
    settings: SendSettings,
    streak: FailureStreak,
    should_stop: Callable[[], bool],
    throttle: Callable[[], None] | None,
    heartbeat: Callable[[], None],
) -> BatchReport:
    report = BatchReport()
    built: IssueMessage | None = None
    base = f"{worker}:{secrets.token_hex(4)}"
    chunk_no = 0
    monotonic = time.monotonic
    while not should_stop():
        heartbeat()
        chunk_no += 1
        claim_id = f"{base}:{chunk_no}"[:64]
        rows = claim(
            session, issue_id, batch, claim_id, utcnow(), settings.lease_seconds,
            settings.claim_chunk,
        )  # fmt: skip
        session.commit()
        if not rows:
            if _queued_and_due(session, issue_id, batch):
                # Rows are there but were not claimable this instant (another transaction
                # held them, or a subscriber changed under the claim): look again shortly
                # rather than leave them to the reconciler.
                session.commit()
                _sleep(0.05, should_stop)
                continue
            wait_until = next_retry_at(session, issue_id, batch)
            status = session.scalar(sa.select(Issue.status).where(Issue.id == issue_id))
            session.commit()
            if wait_until is None or status is not I.SENDING:
                break
            wait = (wait_until - utcnow()).total_seconds()
            if wait > settings.short_wait:
                break  # the reconciler re-dispatches the batch when the retry is due
            _sleep(max(wait, 0.01), should_stop)
            continue
        if built is None:
            built = message()
            session.commit()  # building may have loaded the issue: end that transaction
        claimed_at = checked_at = monotonic()
        gone: set[int] = set()
        for index, row in enumerate(rows):
            if should_stop():
                report.stopped = True
                report.released += release(session, claim_id, [r.delivery_id for r in rows[index:]])
                session.commit()
                return report
            now_m = monotonic()
            if now_m - claimed_at > settings.lease_seconds / 2:
                extend_lease(session, claim_id, utcnow(), settings.lease_seconds)
                session.commit()
                claimed_at = now_m
            if throttle is not None:
                try:
                    throttle()
                except InterruptedError:
                    report.stopped = True
                    report.released += release(
                        session, claim_id, [r.delivery_id for r in rows[index:]]
                    )
                    session.commit()
                    return report
                now_m = monotonic()
            if now_m - checked_at >= settings.recheck_seconds:
                # Whoever unsubscribed since the claim must not get this copy.
                left = recorder.no_longer_confirmed(issue_id, batch, claim_id)
                if left:
                    report.skipped += skip_claimed(session, claim_id, left)
                    session.commit()
                    gone |= left
                checked_at = monotonic()
            if row.delivery_id in gone:
                continue
            data = built.bytes_for(row.subscriber_id, row.email, token_for(row.subscriber_id))
            try:
                smtp.send(row.email, data)
            except SMTPPermanentError as exc:
                record_permanent(session, row, claim_id, utcnow(), str(exc))
                session.commit()
                report.failed += 1
                count = streak.failed(issue_id)
            except SMTPTemporaryError as exc:
                outcome = record_temporary(
                    session,
                    row,
                    claim_id,
                    utcnow(),
                    str(exc),
                    max_attempts=settings.max_attempts,
                    retry_base=settings.retry_base,
                )
                session.commit()
                report.failed += outcome is D.FAILED
                report.retried += outcome is D.QUEUED
                count = streak.failed(issue_id)
            else:
                if not recorder.sent(row.delivery_id, claim_id, utcnow()):
                    report.lost_leases += 1
                report.sent += 1
                streak.succeeded(issue_id)
                continue
            if count >= settings.pause_after:
                reason = (
                    f"paused automatically: the last {count} messages all failed "
                    f"(last answer: {_last_error(session, row.delivery_id)})"
                )
                pause(session, issue_id, reason)
                report.released += release(
                    session, claim_id, [r.delivery_id for r in rows[index + 1 :]]
                )
                session.commit()
                streak.clear(issue_id)
                report.paused = True
                return report
    else:
        report.stopped = True
    report.finished = finish_if_done(session, issue_id, utcnow())
    session.commit()
    return report


def _queued_and_due(session: Session, issue_id: int, batch: int) -> bool:
    due = sa.or_(Delivery.next_attempt_at.is_(None), Delivery.next_attempt_at <= utcnow())
    sending = sa.exists().where(Issue.id == issue_id, Issue.status == I.SENDING)
    return bool(
        session.scalar(
            sa.select(
                sa.exists().where(
                    Delivery.issue_id == issue_id,
                    Delivery.batch == batch,
                    Delivery.status == D.QUEUED,
                    due,
                    sending,
                )
            )
        )
    )


def _last_error(session: Session, delivery_id: int) -> str:
    return session.scalar(sa.select(Delivery.last_error).where(Delivery.id == delivery_id)) or ""


def _sleep(seconds: float, should_stop: Callable[[], bool]) -> None:
    end = time.monotonic() + seconds
    while not should_stop() and (left := end - time.monotonic()) > 0:
        time.sleep(min(left, 0.1))


def render_issue(
    mailer: Mailer, subject: str, body_md: str, slug: str, unsubscribe_url: str
) -> Rendered:
    """Render an issue's email (subject, text, HTML) around one unsubscribe URL."""
    from markupsafe import Markup

    from .content import render_body

    base = mailer.config["BASE_URL"]
    body = render_body(body_md, base)
    return mailer.render(
        "issue",
        {
            "subject": subject,
            "body_html": Markup(body.html),  # already sanitised; never a template
            "body_text": body.text,
            "view_url": f"{base}/archive/{slug}",
            "unsubscribe_url": unsubscribe_url,
        },
    )


def list_id(newsletter_name: str, domain: str) -> str:
    """Return the List-Id header value: the name and a stable id under the sender's domain."""
    from .content import slugify

    return f"{newsletter_name} <{slugify(newsletter_name)}.{domain}>"


def issue_message(
    mailer: Mailer, issue: Issue, secret: bytes, subject_prefix: str = ""
) -> IssueMessage:
    """Render ``issue`` once and return the per-recipient builder."""
    unsubscribe_base = mailer.config["BASE_URL"] + "/unsubscribe/"
    rendered = render_issue(
        mailer,
        subject_prefix + issue.subject,
        issue.body_md,
        issue.slug,
        unsubscribe_base + UNSUBSCRIBE_PLACEHOLDER,
    )
    return IssueMessage(
        mailer,
        rendered,
        issue_id=issue.id,
        unsubscribe_base=unsubscribe_base,
        secret=secret,
        list_id=list_id(mailer.config["NEWSLETTER_NAME"], mailer.from_domain),
    )
