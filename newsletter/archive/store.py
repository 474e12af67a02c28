"""Entries into issues, all or nothing: one transaction per source, each entry at most once.

An entry whose key (its id in the source) or canonical link is stored already is "already
there"; the rest become issues with their source row and tags. Nothing is committed until
every entry is written, so a source that fails half-way (a bad file, a database error, another
import racing this one) leaves the archive as it was.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from newsletter.archive.entry import Entry, Skipped, check_entry
from newsletter.archive.tables import ArchiveTag, IssueSource
from newsletter.errors import Conflict
from newsletter.mail.body import slugify
from newsletter.models import Issue, IssueStatus, utcnow

log = logging.getLogger(__name__)

CHUNK = 500
MAX_SLUG = 80
Progress = Callable[[int, int], None]


@dataclass
class Report:
    """What an import did: issues added, entries already there, entries skipped and why."""

    source: str
    added: list[int] = field(default_factory=list)  # the new issues' ids, oldest post first
    already: int = 0
    skipped: list[Skipped] = field(default_factory=list)

    def lines(self) -> list[str]:
        """Return the report as the command line prints it."""
        out = [
            f"added {len(self.added)}",
            f"already there {self.already}",
            f"skipped {len(self.skipped)}",
        ]
        out += [f"skipped\t{s.name}\t{s.reason}" for s in self.skipped]
        return out


def _chunks(items: Sequence[str]) -> Iterable[Sequence[str]]:
    for start in range(0, len(items), CHUNK):
        yield items[start : start + CHUNK]


def known_keys(session: Session, entries: Sequence[Entry]) -> tuple[set[str], set[str]]:
    """Return which of the entries' keys and canonical-link keys are stored already."""
    keys = [e.key for e in entries]
    urls = [u for u in (e.url_key for e in entries) if u]
    found_keys: set[str] = set()
    found_urls: set[str] = set()
    for chunk in _chunks(keys):
        found_keys.update(
            session.scalars(sa.select(IssueSource.key).where(IssueSource.key.in_(chunk)))
        )
    for chunk in _chunks(urls):
        found_urls.update(
            u
            for u in session.scalars(
                sa.select(IssueSource.url_key).where(IssueSource.url_key.in_(chunk))
            )
            if u
        )
    return found_keys, found_urls


class Slugs:
    """Hand out slugs no issue has, as ``issues.actions`` does, without a query per entry."""

    def __init__(self, session: Session) -> None:
        self.taken = set(session.scalars(sa.select(Issue.slug)))

    def take(self, wished: str, title: str) -> str:
        base = slugify(wished or title, MAX_SLUG)
        if base == "issue" and wished:
            base = slugify(title, MAX_SLUG)
        # A slug of digits alone would be read as an issue's id by /archive/<id-or-slug>.
        slug, n = (base, 2) if not re.fullmatch(r"\d+", base) else (f"{base}-2", 3)
        while slug in self.taken:
            slug = f"{base}-{n}"
            n += 1
        self.taken.add(slug)
        return slug


def add_issue(
    session: Session, entry: Entry, slugs: Slugs, status: IssueStatus = IssueStatus.ARCHIVED
) -> Issue:
    """Add one entry as an issue with its source row and tags (flushed, not committed)."""
    issue = Issue(
        subject=entry.title,
        body_md=entry.body_md,
        slug=slugs.take(entry.slug, entry.title),
        status=status,
    )
    session.add(issue)
    session.flush()
    session.add(
        IssueSource(
            issue_id=issue.id,
            key=entry.key,
            ident=entry.ident,
            url=entry.url[:1000],
            url_key=entry.url_key,
            origin=entry.origin,
            published_at=entry.published_at,
            imported_at=utcnow(),
        )
    )
    session.add_all(ArchiveTag(issue_id=issue.id, name=tag) for tag in entry.tags)
    return issue


def sort_out(session: Session, items: Iterable[Entry | Skipped], report: Report) -> list[Entry]:
    """Return the entries to add, oldest first; count the rest in ``report``."""
    entries: list[Entry] = []
    seen: set[str] = set()
    for item in items:
        if isinstance(item, Skipped):
            report.skipped.append(item)
            continue
        why = check_entry(item)
        if why is None and item.key in seen:
            why = "the same entry twice in this source"
        if why is not None:
            report.skipped.append(Skipped(item.title or item.ident, why))
            continue
        seen.add(item.key)
        entries.append(item)
    keys, urls = known_keys(session, entries)
    new = [e for e in entries if e.key not in keys and (e.url_key is None or e.url_key not in urls)]
    report.already += len(entries) - len(new)
    new.sort(key=lambda e: (e.published_at, e.title))
    return new


def import_entries(
    session: Session,
    source: str,
    items: Iterable[Entry | Skipped],
    progress: Progress | None = None,
) -> Report:
    """Add a source's entries as archived issues in one transaction; return the report."""
    report = Report(source)
    new = sort_out(session, items, report)
    slugs = Slugs(session)
    try:
        for done, entry in enumerate(new, 1):
            report.added.append(add_issue(session, entry, slugs).id)
            if progress is not None:
                progress(done, len(new))
        session.commit()
    except IntegrityError:
        session.rollback()
        raise Conflict(
            "Another import or the feed's poll added some of these posts at the same moment; "
            "nothing was imported. Run the import again: what is there now is left alone."
        ) from None
    except BaseException:
        session.rollback()
        raise
    for skipped in report.skipped:
        log.info("import of %s: skipped %s: %s", source, skipped.name, skipped.reason)
    log.info(
        "import of %s: added %s, already there %s, skipped %s",
        source,
        len(report.added),
        report.already,
        len(report.skipped),
    )
    return report
