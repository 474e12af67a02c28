"""Confirmation and welcome mails and browser imports: their jobs, and the rebuild of lost ones.

The database says what is owed: a reader's ``confirm_due_at`` or ``welcome_due_at`` (set with
the reservation, cleared once the server took the mail), an import ``queued`` or ``running``.
Each job's id names what it does (whose mail, owed since when; which import, which attempt)
and is enqueued with ``unique``, so the web request's enqueue and the reconciler's are one job
in Redis, never two mails. A request that finds Redis down answers as usual: the reconciler
enqueues what it could not, once Redis and a worker are back.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from typing import Any

import redis
import sqlalchemy as sa
from flask import Flask
from rq.exceptions import InvalidJobOperation, NoSuchJobError
from rq.job import Job, JobStatus
from sqlalchemy.orm import InstrumentedAttribute, Session

from newsletter.extensions import db, get_redis, settings
from newsletter.mail.refusals import Verdict
from newsletter.mail.smtp import SMTPPermanentError, SMTPSender
from newsletter.models import ImportJob, ImportStatus, Subscriber, SubscriberStatus, utcnow
from newsletter.services import mailer, tokens
from newsletter.subscribers import imports, limits
from newsletter.subscribers.mails import confirmation_mail, welcome_mail
from newsletter.subscribers.signup import SubscribeResult
from newsletter.tasks.queues import (
    DEFAULT_QUEUE,
    MAIL_QUEUE,
    enqueue,
    get_queue,
    job,
    kind_of,
    name_job,
)

log = logging.getLogger(__name__)

S = SubscriberStatus

# RQ stops a mail job after this long; a job "started" longer ago than that (and a margin)
# belongs to a worker that died, whatever Redis still says.
MAIL_JOB_TIMEOUT = 120
IMPORT_JOB_TIMEOUT = 3600
_DEAD_AFTER = timedelta(seconds=30)
# Owed mail older than this is given up: a confirmation link or a welcome that late is
# more surprising than useful (and a confirmation link may not outlive CONFIRM_MAX_AGE).
MAIL_OWED_FOR = timedelta(days=1)
REBUILD_AT_ONCE = 1000
# A mail refused for these reasons will never be taken: it is settled, not retried.
_FOR_GOOD = frozenset({Verdict.HARD, Verdict.SOFT, Verdict.BLOCKED})


def stamp(at: datetime) -> str:
    """Spell a reservation time exactly (microseconds, UTC), for job ids and job arguments."""
    return at.astimezone(UTC).strftime("%Y%m%dT%H%M%S%fZ")


# --- putting work on the queue -----------------------------------------------------------------


def enqueued(func: Callable[..., Any], *args: Any, job_id: str, app: Flask | None = None) -> bool:
    """Enqueue a declared job unless one of that id is in Redis; False also when Redis is down."""
    try:
        return enqueue(func, *args, job_id=job_id, app=app) is not None
    except redis.RedisError:
        # The database says the work is owed: the reconciler enqueues it once Redis is back.
        log.warning("could not enqueue %s: Redis did not answer", job_id)
        return False


def queue_owed(
    send: Callable[[int, str | None], str],
    subscriber_id: int,
    due_at: datetime,
    app: Flask | None = None,
) -> None:
    """Queue ``send`` for the mail a reader is owed since ``due_at``; never raises for Redis."""
    job_id = name_job(send, subscriber_id, due_at)
    enqueued(send, subscriber_id, stamp(due_at), job_id=job_id, app=app)


def queue_confirmation(subscriber_id: int, due_at: datetime, app: Flask | None = None) -> None:
    """Queue the confirmation mail reserved at ``due_at``; never raises for Redis."""
    queue_owed(send_confirmation, subscriber_id, due_at, app)


def queue_owed_confirmation(result: SubscribeResult, app: Flask | None = None) -> None:
    """Queue the confirmation a sign-up reserved, if it reserved one; never raises for Redis.

    With Redis down the database still says the mail is owed: the reconciler sends it later.
    A mail owed later (its domain had its share of confirmations) is left to the reconciler
    too, which enqueues it once its time has come.
    """
    due = result.due_at
    if result.send_confirmation and due is not None and due <= utcnow():
        queue_confirmation(result.subscriber_id, due, app)


def queue_welcome(subscriber_id: int, due_at: datetime, app: Flask | None = None) -> None:
    """Queue the welcome mail owed since ``due_at``; never raises for Redis."""
    queue_owed(send_welcome, subscriber_id, due_at, app)


def queue_import(import_id: int, attempt: int = 0, app: Flask | None = None) -> None:
    """Queue a browser import's run; never raises for Redis."""
    enqueued(run_import, import_id, job_id=name_job(run_import, import_id, attempt), app=app)


# --- the jobs ------------------------------------------------------------------------------------


def settle(column: str, subscriber_id: int, due: datetime | None, **also: Any) -> None:
    """Mark the mail owed since ``due`` as done, unless a newer one became owed meanwhile."""
    if due is not None:
        db.session.execute(
            sa.update(Subscriber)
            .where(Subscriber.id == subscriber_id, getattr(Subscriber, column) == due)
            .values({column: None, "updated_at": Subscriber.updated_at, **also})
            .execution_options(synchronize_session=False)
        )
    db.session.commit()


def send_mail(to: str, data: bytes) -> Exception | None:
    """Hand one mail to the server; return the refusal if it is for good, raise if not."""
    try:
        with SMTPSender(settings()) as smtp:
            smtp.send(to, data)
    except SMTPPermanentError as exc:
        if exc.verdict not in _FOR_GOOD:
            raise  # the relay refuses us: the mail stays owed and is tried again
        return exc
    return None


def mail_owed(
    what: str,
    to: str,
    msg: EmailMessage,
    column: str,
    subscriber_id: int,
    owed: datetime | None,
    **also: Any,
) -> str:
    """Hand one owed mail to the server, mark it done (``column``, and ``also``), say how it went.

    A refusal for good settles the mail too: asking again would get the same answer.
    """
    db.session.commit()  # hold no transaction (on SQLite, no write lock) while SMTP talks
    refused = send_mail(to, mailer().to_bytes(msg))
    settle(column, subscriber_id, owed, **also)
    if refused is not None:
        log.warning("%s for subscriber %s refused for good: %s", what, subscriber_id, refused)
        return f"refused: {refused}"
    log.info("%s mailed for subscriber %s", what, subscriber_id)
    return "sent"


@job(
    queue=MAIL_QUEUE,
    timeout=MAIL_JOB_TIMEOUT,
    unique=True,
    name=lambda subscriber_id, due_at: f"confirm-{subscriber_id}-{stamp(due_at)}",
)
def send_confirmation(subscriber_id: int, due: str | None = None) -> str:
    """Mail the confirmation link to a reader who asked for it and is not confirmed.

    ``due`` names the reservation the job was queued for; a job without one (queued by hand)
    mails a pending reader in any case.
    """
    sub = db.session.get(Subscriber, subscriber_id)
    if sub is None or sub.status is S.CONFIRMED:
        db.session.commit()
        return "skipped: gone or confirmed"
    owed = sub.confirm_due_at
    if owed is None and (due is not None or sub.status is not S.PENDING):
        db.session.commit()
        return "skipped: nothing owed"
    if owed is not None and owed > utcnow():
        # Owed later (the domain had its share): the reconciler queues it when it is due.
        db.session.commit()
        return "skipped: not due yet"
    found, m = settings(), mailer()
    msg = confirmation_mail(
        m,
        m.links,
        sub.email,
        tokens().confirm_token(sub.id, sub.version, sub.confirm_name),
        max_age=found.confirm_max_age,
        slot=found.weekly_slot,
        now=utcnow(),
    )
    # The name has done its work once mailed: it is in the link now, and no longer kept.
    return mail_owed(
        "confirmation", sub.email, msg, "confirm_due_at", subscriber_id, owed, confirm_name=None
    )


@job(
    queue=MAIL_QUEUE,
    timeout=MAIL_JOB_TIMEOUT,
    unique=True,
    name=lambda subscriber_id, due_at: f"welcome-{subscriber_id}-{stamp(due_at)}",
)
def send_welcome(subscriber_id: int, due: str | None = None) -> str:
    """Mail the welcome note, with safe-sender advice, to a reader who just confirmed."""
    sub = db.session.get(Subscriber, subscriber_id)
    if sub is None or sub.status is not S.CONFIRMED:
        db.session.commit()
        return "skipped: not confirmed"
    owed = sub.welcome_due_at
    if owed is None and due is not None:
        db.session.commit()
        return "skipped: already mailed"
    m, tok = mailer(), tokens()
    msg = welcome_mail(
        m,
        m.links,
        sub.email,
        sub.name,
        unsubscribe_token=tok.unsubscribe_token(sub.id),
        manage_token=tok.manage_token(sub.id, sub.created_at, sub.email),
        slot=settings().weekly_slot,
    )
    return mail_owed("welcome", sub.email, msg, "welcome_due_at", subscriber_id, owed)


# Named by the claim it makes on the import: number ``attempt + 1``.
@job(
    queue=DEFAULT_QUEUE,
    timeout=IMPORT_JOB_TIMEOUT,
    unique=True,
    name=lambda import_id, attempt: f"import-{import_id}-{attempt}",
)
def run_import(import_id: int) -> str:
    """Run one browser CSV import; queue the confirmation mails it reserved."""
    return imports.run_import(db.session(), import_id, notify=queue_confirmation)


# --- the rebuild ---------------------------------------------------------------------------------


def grace() -> timedelta:
    # A request enqueues its job right after its commit: a row one tick old whose job Redis
    # does not have lost it.
    return timedelta(seconds=settings().reconcile_interval)


def reconcile() -> None:
    """Rebuild the confirmation and welcome mails and the browser imports Redis lost."""
    reconcile_mail()
    reconcile_imports()


def guarded(what: str, rebuild: Callable[[Session, datetime], int]) -> int:
    """Run one rebuild of the reconciler; a failure is logged and stops none of the others."""
    try:
        return rebuild(db.session(), utcnow())
    except Exception:  # never let this stop the rest of the reconciler
        db.session.rollback()
        log.exception("%s reconciliation failed", what)
        return 0


def reconcile_mail() -> int:
    """Enqueue every confirmation and welcome mail the database owes and Redis lost."""
    return guarded("mail", _rebuild_mail)


def _rebuild_mail(session: Session, now: datetime) -> int:
    max_age = timedelta(seconds=settings().confirm_max_age)
    keep_confirm = now - min(MAIL_OWED_FOR, max_age)
    # Give up on mail owed too long; this also keeps the due indexes down to a few rows.
    session.execute(
        sa.update(Subscriber)
        .where(Subscriber.confirm_due_at < keep_confirm)
        .values(confirm_due_at=None, confirm_name=None, updated_at=Subscriber.updated_at)
    )
    session.execute(
        sa.update(Subscriber)
        .where(Subscriber.welcome_due_at < now - MAIL_OWED_FOR)
        .values(welcome_due_at=None, updated_at=Subscriber.updated_at)
    )
    limits.prune(session, now)
    enqueued = rebuild_owed(
        session,
        now,
        [
            OwedMail(
                Subscriber.confirm_due_at,
                Subscriber.status != S.CONFIRMED,
                send_confirmation,
            ),
            OwedMail(
                Subscriber.welcome_due_at,
                Subscriber.status == S.CONFIRMED,
                send_welcome,
            ),
        ],
    )
    if enqueued:
        log.info("reconciler: %s owed mails had lost their job; enqueued again", enqueued)
    return enqueued


@dataclass(frozen=True)
class OwedMail:
    """One kind of mail a reader can be owed: the column saying since when, and its job."""

    due: InstrumentedAttribute[datetime | None]
    still: sa.ColumnElement[bool]  # whom it is still owed to
    send: Callable[..., str]  # a job declared with its name rule (subscriber id, due_at)


def rebuild_owed(session: Session, now: datetime, kinds: Sequence[OwedMail]) -> int:
    """Enqueue the owed mails of these kinds whose job Redis lost; return how many."""
    cutoff = now - grace()
    wanted: list[Wanted] = []
    for kind in kinds:
        rows = session.execute(
            sa.select(Subscriber.id, kind.due)
            .where(kind.due < cutoff, kind.still)
            .order_by(kind.due)
            .limit(REBUILD_AT_ONCE)
        ).all()
        wanted += [
            (name_job(kind.send, sid, due), kind.send, (sid, stamp(due)))
            for sid, due in rows
            if due is not None
        ]
    session.commit()  # end the read: SQLite holds its write lock for the whole transaction
    return enqueue_lost(wanted, now)


def reconcile_imports() -> int:
    """Hand back imports whose worker died and enqueue every waiting import Redis lost."""
    return guarded("import", _rebuild_imports)


def _rebuild_imports(session: Session, now: datetime) -> int:
    lease = timedelta(seconds=settings().send_lease_seconds)
    silent = session.execute(
        sa.select(ImportJob.id, ImportJob.attempt).where(
            ImportJob.status == ImportStatus.RUNNING,
            sa.or_(ImportJob.heartbeat_at.is_(None), ImportJob.heartbeat_at < now - lease),
        )
    ).all()
    for import_id, attempt in silent:
        # Conditional on the attempt: a run that reported meanwhile keeps its claim.
        session.execute(
            sa.update(ImportJob)
            .where(
                ImportJob.id == import_id,
                ImportJob.status == ImportStatus.RUNNING,
                ImportJob.attempt == attempt,
                sa.or_(ImportJob.heartbeat_at.is_(None), ImportJob.heartbeat_at < now - lease),
            )
            .values(status=ImportStatus.QUEUED)
        )
        log.warning("import %s: its worker went silent; handed back", import_id)
    waiting = session.execute(
        sa.select(ImportJob.id, ImportJob.attempt).where(
            ImportJob.status == ImportStatus.QUEUED,
            sa.or_(ImportJob.attempt > 0, ImportJob.created_at < now - grace()),
        )
    ).all()
    session.commit()
    wanted: list[Wanted] = [
        (name_job(run_import, i, attempt), run_import, (i,)) for i, attempt in waiting
    ]
    return enqueue_lost(wanted, now)


# A job to have in Redis: its id, its declared function, its arguments.
Wanted = tuple[str, Callable[..., Any], tuple[Any, ...]]


def enqueue_lost(wanted: list[Wanted], now: datetime) -> int:
    """Enqueue each wanted job that Redis has not got waiting or running; return how many.

    The jobs are of one declared kind: they share its queue and time limit.
    """
    if not wanted:
        return 0
    kind = kind_of(wanted[0][1])
    assert kind is not None, "enqueue_lost takes declared jobs only"
    queue = get_queue(kind.queue)
    found = Job.fetch_many(
        [job_id for job_id, _f, _a in wanted], connection=get_redis(), serializer=queue.serializer
    )
    in_queue: list[set[str]] = []  # read once, and only if a job says "queued"

    def waiting(job_id: str) -> bool:
        if not in_queue:
            in_queue.append(set(queue.get_job_ids()))
        return job_id in in_queue[0]

    count = 0
    for (job_id, func, args), there in zip(wanted, found, strict=True):
        if there is not None:
            if _alive(there, waiting, kind.timeout, now):
                continue
            try:
                there.delete()  # finished or failed with the work still owed, or dead: redo it
            except (InvalidJobOperation, NoSuchJobError):
                pass  # it expired or another reconciler removed it since the fetch
        if enqueued(func, *args, job_id=job_id):
            count += 1
    return count


def _alive(job: Job, waiting: Callable[[str], bool], timeout: int, now: datetime) -> bool:
    """Say whether a job will still run, or is running in a live worker."""
    status = job.get_status(refresh=False)
    if status == JobStatus.QUEUED:
        # "Queued" yet out of the list: popped by a worker that died before starting it.
        return waiting(job.id)
    if status == JobStatus.STARTED:
        return not _dead(job, timeout, now)
    return status in (JobStatus.SCHEDULED, JobStatus.DEFERRED)


def _dead(job: Job, timeout: int, now: datetime) -> bool:
    started = job.started_at
    if started is None:
        return False
    if started.tzinfo is None:
        started = started.replace(tzinfo=UTC)
    return started < now - timedelta(seconds=timeout) - _DEAD_AFTER
