"""What the public archive shows: tips a page at a time, searched or by tag, with excerpts.

Every page costs the same few queries whatever the archive's size: one for the page's tips
(only the first part of each body is read, for its excerpt), one for their tags, one count.
Search matches every word of the query in a tip's title or body, case-insensitively.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

from newsletter.archive.clean import plain_text
from newsletter.archive.tables import MAX_TAG, ArchiveTag, IssueSource
from newsletter.mail.body import markdown_to_html
from newsletter.mail.merge import with_fallbacks
from newsletter.models import ISSUE_IN_ARCHIVE, Issue, IssueStatus

EXCERPT_SOURCE = 1500  # characters of a body read for its excerpt
EXCERPT = 220
MAX_QUERY = 100
MAX_WORDS = 6


@dataclass(frozen=True)
class Tip:
    """One tip as a list shows it."""

    id: int
    slug: str
    subject: str
    published: datetime
    excerpt: str
    tags: tuple[str, ...]


def published_at() -> Any:
    """Return when a tip went public: sent (or queued), else its date on the blog."""
    return sa.func.coalesce(
        Issue.sent_at, Issue.queued_at, IssueSource.published_at, Issue.created_at
    )


def in_archive(*columns: Any) -> sa.Select[Any]:
    """Select ``columns`` of every public tip with when it was published, newest first."""
    return (
        sa.select(*columns, published_at())
        .outerjoin(IssueSource, IssueSource.issue_id == Issue.id)
        .where(Issue.status.in_(ISSUE_IN_ARCHIVE))
        .order_by(published_at().desc(), Issue.id.desc())
    )


def latest(session: Session, limit: int) -> list[tuple[Issue, datetime]]:
    """Return the newest tips that were sent or brought in as back catalogue, with their dates."""
    query = in_archive(Issue).where(Issue.status.in_((IssueStatus.SENT, IssueStatus.ARCHIVED)))
    return [(issue, published) for issue, published in session.execute(query.limit(limit))]


def search_words(query: str) -> list[str]:
    """Return the words of a search, at most a few, each as typed (no wildcards)."""
    return query[:MAX_QUERY].split()[:MAX_WORDS]


def clean_tag(tag: str) -> str:
    """Return a tag as stored: one line, lower case."""
    return " ".join(tag.split()).lower()[:MAX_TAG]


def excerpt(body_md: str, base_url: str, length: int = EXCERPT) -> str:
    """Return the first words of a body as plain text, cut at a word, with … when cut."""
    text = plain_text(markdown_to_html(body_md[:EXCERPT_SOURCE], base_url))
    if len(text) <= length:
        return text
    cut = text[:length].rsplit(" ", 1)[0].rstrip(" ,;:.-–—")
    return cut + "…"


def _filtered(query: sa.Select[Any], words: list[str], tag: str) -> sa.Select[Any]:
    for word in words:
        query = query.where(
            sa.or_(
                Issue.subject.icontains(word, autoescape=True),
                Issue.body_md.icontains(word, autoescape=True),
            )
        )
    if tag:
        query = query.where(
            sa.exists().where(ArchiveTag.issue_id == Issue.id, ArchiveTag.name == tag)
        )
    return query


def tags_of(session: Session, issue_ids: list[int]) -> dict[int, tuple[str, ...]]:
    """Return the tags of some issues, in one query."""
    found: dict[int, list[str]] = {i: [] for i in issue_ids}
    if issue_ids:
        for issue_id, name in session.execute(
            sa.select(ArchiveTag.issue_id, ArchiveTag.name)
            .where(ArchiveTag.issue_id.in_(issue_ids))
            .order_by(ArchiveTag.name)
        ):
            found[issue_id].append(name)
    return {i: tuple(names) for i, names in found.items()}


def list_tips(
    session: Session,
    base_url: str,
    *,
    page: int,
    per_page: int,
    words: Sequence[str] = (),
    tag: str = "",
) -> tuple[list[Tip], bool, int]:
    """Return a page of tips (with excerpts and tags), whether more follow, and how many match."""
    query = _filtered(
        in_archive(
            Issue.id,
            Issue.slug,
            Issue.subject,
            sa.func.substr(Issue.body_md, 1, EXCERPT_SOURCE),
        ),
        list(words),
        tag,
    )
    rows = session.execute(query.limit(per_page + 1).offset((page - 1) * per_page)).all()
    more = len(rows) > per_page
    rows = rows[:per_page]
    tags = tags_of(session, [row[0] for row in rows])
    total_query = _filtered(
        sa.select(sa.func.count(Issue.id)).where(Issue.status.in_(ISSUE_IN_ARCHIVE)),
        list(words),
        tag,
    )
    total = int(session.scalar(total_query) or 0)
    tips = [
        Tip(
            id=issue_id,
            slug=slug,
            subject=subject,
            published=published,
            excerpt=excerpt(with_fallbacks(start or ""), base_url),
            tags=tags[issue_id],
        )
        for issue_id, slug, subject, start, published in rows
    ]
    return tips, more, total


def top_tags(session: Session, limit: int = 30) -> list[tuple[str, int]]:
    """Return the tags public tips carry most, with how many carry each."""
    rows = session.execute(
        sa.select(ArchiveTag.name, sa.func.count())
        .join(Issue, Issue.id == ArchiveTag.issue_id)
        .where(Issue.status.in_(ISSUE_IN_ARCHIVE))
        .group_by(ArchiveTag.name)
        .order_by(sa.func.count().desc(), ArchiveTag.name)
        .limit(limit)
    )
    return [(name, int(n)) for name, n in rows]


def find_tip(
    session: Session, issue_id: int | None, slug: str
) -> tuple[Issue, datetime, IssueSource | None] | None:
    """Return a public tip by id or slug, when it was published, and where it came from."""
    query = in_archive(Issue, IssueSource)
    found = None
    if issue_id is not None:
        found = session.execute(query.where(Issue.id == issue_id)).first()
    if found is None:
        found = session.execute(query.where(Issue.slug == slug)).first()
    if found is None:
        return None
    issue, source, published = found
    return issue, published, source
