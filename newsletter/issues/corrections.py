"""Corrections to a sent issue: its archive page and feed entry change, nobody is mailed again.

A sent issue's subject and body stay editable for the archive (a typo, a dead link). Each
change is logged with who made it, when, and the text it replaced, so the editor's page can
show what changed and the archive can say "Updated". The slug never changes: readers and
the mails already sent link to it. The preheader went out with the mail and is not kept
anywhere public, so a correction leaves it as it is.
"""

from __future__ import annotations

import difflib
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, Session, mapped_column

from newsletter.errors import Conflict, Invalid, NotFound
from newsletter.extensions import db
from newsletter.issues.actions import clean_preheader, clean_text
from newsletter.models import Issue, IssueStatus, Model, UTCDateTime, rowcount, utcnow

CORRECTABLE = (IssueStatus.SENT,)
MAX_BY = 300
MAX_DIFF_LINES = 400


class IssueCorrection(Model):
    """One correction of a sent issue: who, when, and the text it replaced (None: unchanged)."""

    __tablename__ = "issue_correction"
    __table_args__ = (sa.Index("ix_issue_correction_issue_at", "issue_id", "at"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    issue_id: Mapped[int] = mapped_column(sa.ForeignKey("issue.id", ondelete="CASCADE"))
    at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    by: Mapped[str] = mapped_column(sa.String(MAX_BY), default="")
    old_subject: Mapped[str | None] = mapped_column(sa.String(200))
    old_body_md: Mapped[str | None] = mapped_column(sa.Text())


def correct_issue(
    issue_id: int, subject: str, body_md: str, preheader: str | None = None, *, by: str
) -> tuple[Issue, bool]:
    """Correct a sent issue's subject and body; return it and whether anything changed.

    Nothing is mailed. Bad text is refused as for any edit, and nothing is stored; an issue
    that is not sent (a send under way, a draft) is a Conflict: the edges decide what then.
    """
    try:
        return _correct(issue_id, subject, body_md, preheader, by)
    except BaseException:
        db.session.rollback()
        raise


def _correct(
    issue_id: int, subject: str, body_md: str, preheader: str | None, by: str
) -> tuple[Issue, bool]:
    issue = db.session.get(Issue, issue_id)
    if issue is None:
        raise NotFound(f"No issue with id {issue_id}.")
    if issue.status not in CORRECTABLE:
        raise Conflict(
            f"Issue {issue_id} is {issue.status.value}; only a sent issue can be corrected."
        )
    subject, body_md = clean_text(subject, body_md)
    if preheader is not None and clean_preheader(preheader) != issue.preheader:
        raise Invalid(
            "preheader",
            "The preheader went out with the mail and is shown nowhere else; "
            "a correction cannot change it.",
        )
    old_subject, old_body = issue.subject, issue.body_md
    if subject == old_subject and body_md == old_body:
        return issue, False
    now = utcnow()
    changed = rowcount(
        db.session.execute(
            sa.update(Issue)
            # Only over the text this correction read: two at once cannot lose one's change.
            .where(
                Issue.id == issue.id,
                Issue.status.in_(CORRECTABLE),
                Issue.subject == old_subject,
                Issue.body_md == old_body,
            )
            .values(subject=subject, body_md=body_md, updated_at=now)
            .execution_options(synchronize_session=False)
        )
    )
    if changed != 1:
        raise Conflict(f"Issue {issue_id} was corrected meanwhile; reload it and try again.")
    db.session.add(
        IssueCorrection(
            issue_id=issue.id,
            at=now,
            by=by[:MAX_BY],
            old_subject=old_subject if subject != old_subject else None,
            old_body_md=old_body if body_md != old_body else None,
        )
    )
    db.session.commit()
    db.session.refresh(issue)
    return issue, True


@dataclass(frozen=True)
class Change:
    """One correction as the editor's page shows it: the subject before and after, the body's
    changed lines."""

    at: datetime
    by: str
    old_subject: str | None
    new_subject: str | None
    old_body_md: str | None
    diff: tuple[str, ...]


def history(session: Session, issue: Issue) -> list[Change]:
    """Return the corrections of ``issue``, newest first, each with what it changed."""
    rows = list(
        session.scalars(
            sa.select(IssueCorrection)
            .where(IssueCorrection.issue_id == issue.id)
            .order_by(IssueCorrection.at.desc(), IssueCorrection.id.desc())
        )
    )
    # Walking back from the text as it is now: each correction's "after" is the next one's
    # "before" (or today's text for the newest).
    subject, body = issue.subject, issue.body_md
    found = []
    for row in rows:
        diff: Sequence[str] = ()
        if row.old_body_md is not None:
            diff = _diff(row.old_body_md, body)
            body = row.old_body_md
        new_subject = subject if row.old_subject is not None else None
        if row.old_subject is not None:
            subject = row.old_subject
        found.append(
            Change(row.at, row.by, row.old_subject, new_subject, row.old_body_md, tuple(diff))
        )
    return found


def _diff(before: str, after: str) -> list[str]:
    lines = list(difflib.unified_diff(before.splitlines(), after.splitlines(), lineterm="", n=1))
    # The two file headers say nothing to an editor; a hunk's line numbers little more.
    out = ["…" if line.startswith("@@") else line for line in lines[2:]]
    if len(out) > MAX_DIFF_LINES:
        out = [*out[:MAX_DIFF_LINES], f"… and {len(out) - MAX_DIFF_LINES} more lines"]
    return out


def last_corrected(session: Session, issue_ids: Sequence[int]) -> dict[int, datetime]:
    """Return when each of ``issue_ids`` was last corrected (those never corrected are absent)."""
    if not issue_ids:
        return {}
    rows = session.execute(
        sa.select(IssueCorrection.issue_id, sa.func.max(IssueCorrection.at))
        .where(IssueCorrection.issue_id.in_(list(issue_ids)))
        .group_by(IssueCorrection.issue_id)
    )
    return {issue_id: at for issue_id, at in rows}
