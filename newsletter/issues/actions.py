"""Issue actions for the edges (CLI, editor, API): write, preview, test, plan, pause, cancel.

Each function commits its change before it returns, and says which batches are now due;
``tasks.dispatch`` hands those to workers afterwards, so a job never sees an uncommitted send.
No Flask here: what an action needs of the app (the Mailer, the batch size, the weekly slot) is
handed to it by the edge that calls it.
"""

from __future__ import annotations

import functools
import logging
import unicodedata
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import make_msgid
from typing import Any, ParamSpec, TypeVar

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError

from newsletter.config import WeeklySlot
from newsletter.delivery import lifecycle, message, plan, progress
from newsletter.delivery.issue_state import IssueMove, move_issue
from newsletter.errors import Conflict, Invalid, NotFound, Upstream
from newsletter.extensions import db
from newsletter.issues.schedule import next_slot
from newsletter.mail import merge
from newsletter.mail.body import slugify
from newsletter.mail.render import Mailer, Rendered
from newsletter.mail.smtp import SMTPPermanentError, SMTPSender, SMTPTemporaryError
from newsletter.models import (
    ISSUE_EDITABLE,
    ISSUE_PUBLIC,
    Issue,
    IssueStatus,
    Subscriber,
    rowcount,
    utcnow,
)
from newsletter.subscribers.validate import normalize_email

log = logging.getLogger(__name__)

MAX_SUBJECT = 200
MAX_BODY = 200_000
MAX_PREHEADER = 200  # inboxes show about 100; the rest is never seen
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


@dataclass(frozen=True)
class Outcome:
    """What an action did, for the user, and the batches it leaves for workers to send now."""

    message: str
    batches: Sequence[int] = ()


def _get(issue_id: int) -> Issue:
    issue = db.session.get(Issue, issue_id) if isinstance(issue_id, int) else None
    if issue is None:
        raise NotFound(f"No issue with id {issue_id}.")
    return issue


def clean_text(subject: str, body_md: str) -> tuple[str, str]:
    """Return the subject as one line and the body with plain newlines; refuse bad ones."""
    subject = " ".join((subject or "").split())
    if not subject:
        raise Invalid("subject", "The subject is empty.")
    if len(subject) > MAX_SUBJECT:
        raise Invalid("subject", f"The subject is longer than {MAX_SUBJECT} characters.")
    body_md = (body_md or "").replace("\r\n", "\n")
    if not body_md.strip():
        raise Invalid("body_md", "The body is empty.")
    if len(body_md) > MAX_BODY:
        raise Invalid("body_md", f"The body is longer than {MAX_BODY} characters.")
    merge.check(subject, body_md)  # nothing is stored with a field that is not the name
    return subject, body_md


def reader_name(address: str) -> str:
    """Return the name of the reader at ``address`` ("" if none): merge fields show it."""
    found = db.session.scalar(sa.select(Subscriber.name).where(Subscriber.email == address))
    return found or ""


def clean_preheader(preheader: str | None) -> str:
    """Return the preheader as one line of text; refuse one an inbox could not show."""
    raw = preheader or ""
    if len(raw) > MAX_PREHEADER:
        raise Invalid("preheader", f"The preheader is longer than {MAX_PREHEADER} characters.")
    if any(unicodedata.category(c) == "Cc" and c not in "\t\n\r" for c in raw):
        raise Invalid("preheader", "The preheader holds a control character.")
    return " ".join(raw.split())


def _unique_slug(subject: str, issue_id: int | None = None) -> str:
    base = slugify(merge.public_line(subject))  # a merge field reads as its fallback
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
def create_issue(subject: str, body_md: str, preheader: str = "") -> Issue:
    """Create a draft issue from a subject, a Markdown body and an optional preheader."""
    subject, body_md = clean_text(subject, body_md)
    preheader = clean_preheader(preheader)
    for _ in range(3):
        issue = Issue(
            subject=subject, body_md=body_md, preheader=preheader, slug=_unique_slug(subject)
        )
        db.session.add(issue)
        try:
            db.session.commit()
            return issue
        except IntegrityError:  # two editors took the same slug at once: pick again
            db.session.rollback()
    raise Conflict("Could not save the issue; try again.")


@_unit
def update_issue(issue_id: int, subject: str, body_md: str, preheader: str | None = None) -> Issue:
    """Change an issue's subject, body (and preheader, unless None) while it is editable."""
    subject, body_md = clean_text(subject, body_md)
    issue = _get(issue_id)
    preheader = issue.preheader if preheader is None else clean_preheader(preheader)
    if issue.status not in ISSUE_EDITABLE:
        raise Conflict(f"Issue {issue_id} is {issue.status.value}; it can no longer be edited.")
    # A back-catalogue tip is public already: its address stays what readers have linked to.
    keep = subject == issue.subject or issue.status is IssueStatus.ARCHIVED
    slug = issue.slug if keep else _unique_slug(subject, issue.id)
    changed = rowcount(
        db.session.execute(
            sa.update(Issue)
            .where(Issue.id == issue.id, Issue.status.in_(ISSUE_EDITABLE))
            .values(
                subject=subject,
                body_md=body_md,
                preheader=preheader,
                slug=slug,
                updated_at=utcnow(),
            )
            .execution_options(synchronize_session=False)
        )
    )
    if changed != 1:
        db.session.rollback()
        raise Conflict(f"Issue {issue_id} was queued meanwhile; it can no longer be edited.")
    db.session.commit()
    db.session.refresh(issue)
    return issue


@_unit
def mark_ready(issue_id: int, slot: WeeklySlot | None) -> str:
    """Mark a draft ready for the next weekly slot (``slot``: WEEKLY_SLOT, if set)."""
    issue = _get(issue_id)
    moved = move_issue(db.session(), issue.id, IssueMove.MARK_READY, utcnow())
    db.session.commit()
    if not moved:
        db.session.refresh(issue)
        if issue.status is IssueStatus.READY:
            return f"Issue {issue_id} is already ready for the next weekly slot."
        raise Conflict(f"Issue {issue_id} is {issue.status.value}; it cannot be marked ready.")
    if slot:
        when = next_slot(utcnow(), slot).astimezone(slot.zone)
        return (
            f"Issue {issue_id} is ready; it goes out at the next weekly slot "
            f"({when:%a %d %b %Y %H:%M %Z})."
        )
    return f"Issue {issue_id} is ready, but no WEEKLY_SLOT is set: send it with `issues send`."


@_unit
def plan_send(issue_id: int, at: datetime | None = None, *, batch_size: int) -> Outcome:
    """Plan an issue's send now, or schedule it at an aware datetime; repeating it changes nothing.

    This only writes the plan and says which batches are due: ``tasks.dispatch.send_issue``
    also hands them to workers, and is what the edges call.
    """
    issue = _get(issue_id)
    now = utcnow()
    if at is not None and at.tzinfo is None:
        raise Invalid("at", "The time has no time zone; add one, e.g. 2025-03-03T09:00+01:00.")
    if issue.status is IssueStatus.CANCELLED:
        raise Conflict(f"Issue {issue_id} was cancelled; it cannot be sent.")
    if issue.status in ISSUE_PUBLIC:
        return Outcome(_already(issue))
    if at is not None and at > now:
        moved = move_issue(
            db.session(), issue.id, IssueMove.SCHEDULE, now, scheduled_at=at.astimezone(UTC)
        )
        db.session.commit()
        db.session.refresh(issue)
        if not moved:
            return Outcome(_already(issue))
        return Outcome(
            f"Issue {issue_id} is scheduled for {at.astimezone(UTC):%Y-%m-%d %H:%M} UTC."
        )
    result = plan.queue_issue(db.session(), issue.id, now, batch_size)
    if result.nobody:
        raise Conflict("There are no confirmed subscribers yet; nothing was queued.")
    db.session.commit()
    db.session.refresh(issue)
    if not result.started:
        return Outcome(_already(issue))
    return Outcome(
        f"Issue {issue_id} is queued for {result.audience} subscriber"
        f"{'' if result.audience == 1 else 's'} in {result.batches} batch"
        f"{'' if result.batches == 1 else 'es'}.",
        range(result.batches),
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


@_unit
def send_test(issue_id: int, to_email: str, mailer: Mailer) -> None:
    """Send one copy of the issue now to ``to_email``, its subject marked [Test]."""
    issue = _get(issue_id)
    try:
        address = normalize_email(to_email)
    except Invalid as exc:
        raise Invalid("to", f"Not a valid address: {exc.message}") from None
    built = message.issue_message(
        mailer, issue, mailer.settings.secret_key.encode(), subject_prefix="[Test] "
    )
    # A test copy carries no one's real token: its unsubscribe link lands on a harmless page.
    data = built.bytes_for(
        0,
        address,
        "test",
        message_id=make_msgid("test", domain=built.domain),
        name=reader_name(address),
    )
    try:
        with SMTPSender(mailer.settings) as smtp:
            smtp.send(address, data)
    except (SMTPTemporaryError, SMTPPermanentError) as exc:
        raise Upstream(f"The mail server did not take the test copy: {exc}") from None


@_unit
def preview(issue_id: int, mailer: Mailer, name: str = "") -> Rendered:
    """Return the issue's email exactly as a subscriber gets it, with a sample unsubscribe link.

    Merge fields show ``name``, or their fallback without one.
    """
    issue = _get(issue_id)
    return message.render_issue(
        mailer,
        issue.subject,
        issue.body_md,
        issue.slug,
        mailer.links.sample_unsubscribe,
        preheader=issue.preheader,
        name=name,
    )


@_unit
def pause_issue(issue_id: int) -> str:
    """Pause a send; what is in flight finishes, nothing else leaves until resumed."""
    issue = _get(issue_id)
    moved = lifecycle.pause(db.session(), issue.id, "paused by an editor")
    db.session.commit()
    if moved:
        return f"Issue {issue_id} is paused."
    db.session.refresh(issue)
    if issue.status is IssueStatus.PAUSED:
        return f"Issue {issue_id} is already paused."
    raise Conflict(f"Issue {issue_id} is {issue.status.value}; only a sending issue can pause.")


@_unit
def plan_resume(issue_id: int) -> Outcome:
    """Mark a paused send as sending again and say which batches still have work.

    Nobody is skipped, nobody sent twice; ``tasks.dispatch.resume_issue`` also hands the
    batches to workers, and is what the edges call.
    """
    issue = _get(issue_id)
    moved = lifecycle.resume(db.session(), issue.id)
    db.session.commit()
    db.session.refresh(issue)
    if not moved and issue.status is not IssueStatus.SENDING:
        raise Conflict(f"Issue {issue_id} is {issue.status.value}; only a paused issue resumes.")
    batches = lifecycle.batches_with_work(db.session(), issue.id)
    db.session.commit()
    if not batches and lifecycle.finish_if_done(db.session(), issue.id, utcnow()):
        db.session.commit()
        return Outcome(f"Issue {issue_id} had nothing left to send; it is marked sent.")
    again = f"Issue {issue_id} is sending again." if moved else f"Issue {issue_id} is sending."
    return Outcome(again, batches)


@_unit
def cancel_issue(issue_id: int) -> str:
    """Cancel an issue: nothing more leaves; copies still queued are counted as skipped."""
    issue = _get(issue_id)
    moved = lifecycle.cancel(db.session(), issue.id)
    db.session.commit()
    if moved:
        return f"Issue {issue_id} is cancelled."
    db.session.refresh(issue)
    if issue.status is IssueStatus.CANCELLED:
        return f"Issue {issue_id} is already cancelled."
    raise Conflict(f"Issue {issue_id} is {issue.status.value}; it cannot be cancelled.")


@_unit
def issue_status(issue_id: int) -> dict[str, Any]:
    """Return counts per delivery status, audience, status, rate per second and ETA."""
    issue = _get(issue_id)
    found = progress.progress(db.session(), issue.id, utcnow()).as_dict()
    db.session.commit()
    found["id"] = issue.id
    found["subject"] = issue.subject
    return found


def _listed(status: IssueStatus | None) -> sa.Select[Any]:
    query = sa.select(Issue).order_by(Issue.id.desc())
    return query if status is None else query.where(Issue.status == status)


def issues_page(status: IssueStatus | None, before: int | None, limit: int) -> list[Issue]:
    """Return up to ``limit`` issues below id ``before`` (or from the top), newest first."""
    query = _listed(status)
    if before is not None:
        query = query.where(Issue.id < before)
    return list(db.session.scalars(query.limit(limit)))


def each_issue(status: IssueStatus | None = None) -> Iterator[tuple[int, IssueStatus, str]]:
    """Yield every issue's id, status and subject, newest first, a batch of rows at a time."""
    query = _listed(status).with_only_columns(Issue.id, Issue.status, Issue.subject)
    for row in db.session.execute(query.execution_options(yield_per=500)):
        yield row.id, row.status, row.subject
