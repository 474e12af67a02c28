"""Issue actions for the CLI and the web editor: write, preview, test, queue, pause, cancel.

This is the edge between Flask/RQ and the delivery engine (sending.py): each function
commits its change and only then hands work to RQ, so a job never sees an uncommitted send.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, ParamSpec, TypeVar

import sqlalchemy as sa
from flask import Flask, current_app
from sqlalchemy.exc import IntegrityError

from . import sending
from .content import slugify
from .extensions import db
from .mail import Rendered, SMTPPermanentError, SMTPSender, SMTPTemporaryError
from .models import Issue, IssueStatus, SubscriberStatus, utcnow
from .services import mailer

log = logging.getLogger(__name__)

EDITABLE = (IssueStatus.DRAFT, IssueStatus.READY, IssueStatus.SCHEDULED)
MAX_SUBJECT = 200
MAX_BODY = 200_000
ALIVE_KEY = "newsletter:send-alive:{issue}:{batch}"
P = ParamSpec("P")
R = TypeVar("R")


def _unit(func: Callable[P, R]) -> Callable[P, R]:
    """End every action's transaction: commit on return, roll back on error (SQLite locks)."""

    @functools.wraps(func)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            result = func(*args, **kwargs)
        except BaseException:
            db.session.rollback()
            raise
        db.session.commit()
        return result

    return wrapper


class IssueError(Exception):
    """An issue action that cannot be done; the message is for the user."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


def _app() -> Flask:
    return current_app._get_current_object()  # type: ignore[attr-defined,no-any-return]


def _get(issue_id: int) -> Issue:
    issue = db.session.get(Issue, issue_id) if isinstance(issue_id, int) else None
    if issue is None:
        raise IssueError(f"No issue with id {issue_id}.")
    return issue


def _clean(subject: str, body_md: str) -> tuple[str, str]:
    subject = " ".join((subject or "").split())
    if not subject:
        raise IssueError("The subject is empty.")
    if len(subject) > MAX_SUBJECT:
        raise IssueError(f"The subject is longer than {MAX_SUBJECT} characters.")
    body_md = (body_md or "").replace("\r\n", "\n")
    if not body_md.strip():
        raise IssueError("The body is empty.")
    if len(body_md) > MAX_BODY:
        raise IssueError(f"The body is longer than {MAX_BODY} characters.")
    return subject, body_md


def _unique_slug(subject: str, issue_id: int | None = None) -> str:
    base = slugify(subject)
    taken = set(
        db.session.scalars(
            sa.select(Issue.slug).where(
                sa.or_(Issue.slug == base, Issue.slug.like(f"{base}-%")),
                Issue.id != (issue_id or 0),
            )
        )
    )
    if base not in taken and not base.isdigit():
        return base
    n = 2
    while f"{base}-{n}" in taken:
        n += 1
    return f"{base}-{n}"


@_unit
def create_issue(subject: str, body_md: str) -> Issue:
    """Create a draft issue from a subject and a Markdown body."""
    subject, body_md = _clean(subject, body_md)
    for _ in range(3):
        issue = Issue(subject=subject, body_md=body_md, slug=_unique_slug(subject))
        db.session.add(issue)
        try:
            db.session.commit()
            return issue
        except IntegrityError:  # two editors took the same slug at once: pick again
            db.session.rollback()
    raise IssueError("Could not save the issue; try again.")


@_unit
def update_issue(issue_id: int, subject: str, body_md: str) -> Issue:
    """Change an issue's subject and body while it has not been queued."""
    subject, body_md = _clean(subject, body_md)
    issue = _get(issue_id)
    if issue.status not in EDITABLE:
        raise IssueError(f"Issue {issue_id} is {issue.status.value}; it can no longer be edited.")
    slug = issue.slug if subject == issue.subject else _unique_slug(subject, issue.id)
    changed = db.session.execute(
        sa.update(Issue)
        .where(Issue.id == issue.id, Issue.status.in_(EDITABLE))
        .values(subject=subject, body_md=body_md, slug=slug, updated_at=utcnow())
        .execution_options(synchronize_session=False)
    ).rowcount
    if changed != 1:
        db.session.rollback()
        raise IssueError(f"Issue {issue_id} was queued meanwhile; it can no longer be edited.")
    db.session.commit()
    db.session.refresh(issue)
    return issue


@_unit
def mark_ready(issue_id: int) -> str:
    """Mark a draft ready for the next weekly slot."""
    issue = _get(issue_id)
    moved = db.session.execute(
        sa.update(Issue)
        .where(Issue.id == issue.id, Issue.status.in_((IssueStatus.DRAFT, IssueStatus.SCHEDULED)))
        .values(status=IssueStatus.READY, scheduled_at=None, updated_at=utcnow())
        .execution_options(synchronize_session=False)
    ).rowcount
    db.session.commit()
    if not moved:
        db.session.refresh(issue)
        if issue.status is IssueStatus.READY:
            return f"Issue {issue_id} is already ready for the next weekly slot."
        raise IssueError(f"Issue {issue_id} is {issue.status.value}; it cannot be marked ready.")
    slot = _app().config.get("WEEKLY_SLOT")
    if slot:
        from .schedule import next_slot

        when = next_slot(utcnow(), slot).astimezone(slot[3])
        return (
            f"Issue {issue_id} is ready; it goes out at the next weekly slot "
            f"({when:%a %d %b %Y %H:%M %Z})."
        )
    return f"Issue {issue_id} is ready, but no WEEKLY_SLOT is set: send it with `issues send`."


def _recipients() -> int:
    from .models import Subscriber

    return (
        db.session.scalar(
            sa.select(sa.func.count()).where(Subscriber.status == SubscriberStatus.CONFIRMED)
        )
        or 0
    )


@_unit
def send_issue(issue_id: int, at: datetime | None = None) -> str:
    """Queue an issue now, or schedule it at an aware datetime; repeating it changes nothing."""
    issue = _get(issue_id)
    now = utcnow()
    if at is not None and at.tzinfo is None:
        raise IssueError("The time has no time zone; add one, e.g. 2025-03-03T09:00+01:00.")
    if issue.status is IssueStatus.CANCELLED:
        raise IssueError(f"Issue {issue_id} was cancelled; it cannot be sent.")
    if issue.status in (IssueStatus.SENDING, IssueStatus.PAUSED, IssueStatus.SENT):
        return _already(issue)
    if at is not None and at > now:
        moved = db.session.execute(
            sa.update(Issue)
            .where(Issue.id == issue.id, Issue.status.in_(EDITABLE))
            .values(status=IssueStatus.SCHEDULED, scheduled_at=at.astimezone(UTC), updated_at=now)
            .execution_options(synchronize_session=False)
        ).rowcount
        db.session.commit()
        db.session.refresh(issue)
        if not moved:
            return _already(issue)
        return f"Issue {issue_id} is scheduled for {at.astimezone(UTC):%Y-%m-%d %H:%M} UTC."
    if _recipients() == 0:
        raise IssueError("There are no confirmed subscribers yet; nothing was queued.")
    result = sending.queue_issue(db.session, issue.id, now, _app().config["BATCH_SIZE"])
    db.session.commit()
    db.session.refresh(issue)
    if not result.started:
        return _already(issue)
    dispatch(issue.id, range(result.batches))
    return (
        f"Issue {issue_id} is queued for {result.audience} subscriber"
        f"{'' if result.audience == 1 else 's'} in {result.batches} batch"
        f"{'' if result.batches == 1 else 'es'}."
    )


def _already(issue: Issue) -> str:
    s = issue.status
    if s is IssueStatus.SENT:
        return f"Issue {issue.id} was already sent."
    if s is IssueStatus.SCHEDULED and issue.scheduled_at:
        return f"Issue {issue.id} is scheduled for {issue.scheduled_at:%Y-%m-%d %H:%M} UTC."
    if s is IssueStatus.CANCELLED:
        return f"Issue {issue.id} was cancelled."
    return f"Issue {issue.id} is already {s.value}; nothing new was queued."


def dispatch(issue_id: int, batches: Any, *, app: Flask | None = None) -> int:
    """Enqueue a delivery job per batch unless one is waiting or running; return how many."""
    from rq.exceptions import InvalidJobOperation, NoSuchJobError
    from rq.job import Job, JobStatus

    from . import get_redis
    from .jobs import deliver_batch
    from .queues import SEND_QUEUE, get_queue

    app = app or _app()
    redis = get_redis(app)
    queue = get_queue(SEND_QUEUE, app)
    waiting = {JobStatus.QUEUED, JobStatus.SCHEDULED, JobStatus.DEFERRED}
    datas = []
    in_queue: set[str] | None = None
    for batch in batches:
        job_id = f"send-{issue_id}-{batch}"
        if redis.exists(ALIVE_KEY.format(issue=issue_id, batch=batch)):
            continue  # a live worker is on it right now
        try:
            job = Job.fetch(job_id, connection=redis, serializer=queue.serializer)
        except NoSuchJobError:
            job = None
        if job is not None:
            status = job.get_status(refresh=False)
            if status == JobStatus.QUEUED and in_queue is None:
                in_queue = set(queue.get_job_ids())
            # A job can say "queued" yet be gone from the list (popped by a worker that was
            # stopped before it started it): only one really waiting in line counts.
            if status in waiting and (status != JobStatus.QUEUED or job_id in (in_queue or ())):
                continue
            # Finished, failed, stopped, or started by a worker that died: make room for a new one.
            try:
                job.delete()
            except (InvalidJobOperation, NoSuchJobError):
                pass  # it expired or another dispatcher removed it since the fetch: room made
        datas.append(
            queue.prepare_data(
                deliver_batch,
                args=(issue_id, batch),
                job_id=job_id,
                timeout=6 * 3600,
                result_ttl=3600,
                failure_ttl=7 * 24 * 3600,
            )
        )
    if datas:
        queue.enqueue_many(datas)
    return len(datas)


@_unit
def send_test(issue_id: int, to_email: str) -> None:
    """Send one copy of the issue now to ``to_email``, its subject marked [Test]."""
    from .subscriptions import InvalidInput, normalize_email

    issue = _get(issue_id)
    try:
        address = normalize_email(to_email)
    except InvalidInput as exc:
        raise IssueError(f"Not a valid address: {exc}") from None
    app = _app()
    message = sending.issue_message(
        mailer(app), issue, app.config["SECRET_KEY"].encode(), subject_prefix="[Test] "
    )
    # A test copy carries no one's real token: its unsubscribe link lands on a harmless page.
    from email.utils import make_msgid

    data = message.bytes_for(
        0, address, "test", message_id=make_msgid("test", domain=message.domain)
    )
    try:
        with SMTPSender(app.config) as smtp:
            smtp.send(address, data)
    except (SMTPTemporaryError, SMTPPermanentError) as exc:
        raise IssueError(f"The mail server did not take the test copy: {exc}") from None


@_unit
def preview(issue_id: int) -> Rendered:
    """Return the issue's email exactly as a subscriber gets it, with a sample unsubscribe link."""
    issue = _get(issue_id)
    m = mailer()
    return sending.render_issue(
        m,
        issue.subject,
        issue.body_md,
        issue.slug,
        m.config["BASE_URL"] + "/unsubscribe/sample-token",
    )


@_unit
def pause_issue(issue_id: int) -> str:
    """Pause a send; what is in flight finishes, nothing else leaves until resumed."""
    issue = _get(issue_id)
    moved = sending.pause(db.session, issue.id, "paused by an editor")
    db.session.commit()
    if moved:
        return f"Issue {issue_id} is paused."
    db.session.refresh(issue)
    if issue.status is IssueStatus.PAUSED:
        return f"Issue {issue_id} is already paused."
    raise IssueError(f"Issue {issue_id} is {issue.status.value}; only a sending issue can pause.")


@_unit
def resume_issue(issue_id: int) -> str:
    """Resume a paused send where it stopped: nobody skipped, nobody sent twice."""
    issue = _get(issue_id)
    moved = sending.resume(db.session, issue.id)
    db.session.commit()
    db.session.refresh(issue)
    if not moved and issue.status is not IssueStatus.SENDING:
        raise IssueError(f"Issue {issue_id} is {issue.status.value}; only a paused issue resumes.")
    batches = sending.batches_with_work(db.session, issue.id)
    db.session.commit()
    dispatch(issue.id, batches)
    if sending.finish_if_done(db.session, issue.id, utcnow()):
        db.session.commit()
        return f"Issue {issue_id} had nothing left to send; it is marked sent."
    return f"Issue {issue_id} is sending again." if moved else f"Issue {issue_id} is sending."


@_unit
def cancel_issue(issue_id: int) -> str:
    """Cancel an issue: nothing more leaves; copies still queued are counted as skipped."""
    issue = _get(issue_id)
    moved = sending.cancel(db.session, issue.id)
    db.session.commit()
    if moved:
        return f"Issue {issue_id} is cancelled."
    db.session.refresh(issue)
    if issue.status is IssueStatus.CANCELLED:
        return f"Issue {issue_id} is already cancelled."
    raise IssueError(f"Issue {issue_id} is {issue.status.value}; it cannot be cancelled.")


@_unit
def issue_status(issue_id: int) -> dict[str, Any]:
    """Return counts per delivery status, audience, status, rate per second and ETA."""
    issue = _get(issue_id)
    found = sending.progress(db.session, issue.id, utcnow()).as_dict()
    db.session.commit()
    found["id"] = issue.id
    found["subject"] = issue.subject
    return found
