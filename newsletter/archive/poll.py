"""The blog feed (``FEED_URL``) polled: the back catalogue at the first poll, then new issues.

``claim_poll`` takes the next poll with a conditional UPDATE of ``next_poll_at``: of any
number of workers' ticks, one wins each interval. ``poll_feed`` fetches the feed with a
conditional GET (a 304 costs one request and changes nothing but the poll's time) and, at the
first successful poll, archives what the feed holds, as ``issues import`` would. After that,
each item not seen before becomes one issue, a draft or ready for the weekly slot by
``FEED_MODE``; each is inserted under the entry's unique key in a savepoint of its own, so a
second poller racing this one (a lock in Redis is meant to stop it first) adds nothing twice.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from newsletter.archive.entry import Entry, Skipped, SourceError, digest
from newsletter.archive.feeds import feed_entries, parse_feed
from newsletter.archive.fetch import FetchError, fetch
from newsletter.archive.sources import Fetching
from newsletter.archive.store import Report, Slugs, add_issue, import_entries, sort_out
from newsletter.archive.tables import FeedState
from newsletter.config import Feed
from newsletter.errors import Conflict
from newsletter.models import IssueStatus, rowcount, utcnow

log = logging.getLogger(__name__)

LATE_MARGIN = timedelta(days=7)


@dataclass
class Polled:
    """What one poll did, for the log and the tests."""

    status: str  # 200, 304, error, busy (another poll holds the feed)
    archived: int = 0
    issues: list[int] = field(default_factory=list)
    error: str = ""


def feed_state(session: Session, feed: Feed) -> FeedState:
    """Return the state row of ``feed``'s URL, made on first use (safely, if two race)."""
    key = digest(feed.url)
    state = session.scalar(sa.select(FeedState).where(FeedState.url_key == key))
    if state is not None:
        return state
    try:
        with session.begin_nested():
            session.add(FeedState(url_key=key, url=feed.url[:1000]))
    except IntegrityError:
        pass  # another worker made it first
    return session.scalars(sa.select(FeedState).where(FeedState.url_key == key)).one()


def claim_poll(session: Session, feed: Feed, now: datetime) -> str | None:
    """Take the poll that is due now, if any; return a name for it (None: not due, or taken)."""
    state = feed_state(session, feed)
    due = state.next_poll_at
    if due is not None and due > now:
        return None
    following = now + timedelta(seconds=feed.interval)
    taken = rowcount(
        session.execute(
            sa.update(FeedState)
            .where(
                FeedState.id == state.id,
                FeedState.next_poll_at.is_(None) if due is None else FeedState.next_poll_at == due,
            )
            .values(next_poll_at=following)
            .execution_options(synchronize_session=False)
        )
    )
    session.commit()
    return f"{state.id}-{following:%Y%m%d%H%M%S%f}" if taken == 1 else None


def _failed(session: Session, feed: Feed, error: str) -> Polled:
    state = feed_state(session, feed)
    state.last_poll_at = state.last_error_at = utcnow()
    state.last_status = "error"
    state.last_error = error[:500]
    state.failures += 1
    session.commit()
    log.warning("feed %s: poll failed (%s in a row): %s", feed.url, state.failures, error)
    return Polled("error", error=error)


def _new_items(
    session: Session, state: FeedState, feed: Feed, items: list[Entry | Skipped]
) -> Polled:
    """Add each item not seen before: a new issue, or archived if older than the first poll."""
    report = Report(feed.url)
    new = sort_out(session, items, report)
    slugs = Slugs(session)
    polled = Polled("200")
    fresh = IssueStatus.READY if feed.mode == "ready" else IssueStatus.DRAFT
    started = state.started_at
    for entry in new:
        # A post dated well before the first poll surfaced late (a feed that lists a few at a
        # time): it is back catalogue, not news. A post written days before it went public
        # (a blog dates some posts by their draft) is still news.
        late = started is not None and entry.published_at < started - LATE_MARGIN
        try:
            with session.begin_nested():
                issue = add_issue(session, entry, slugs, IssueStatus.ARCHIVED if late else fresh)
        except IntegrityError:
            continue  # another poll added this item a moment ago: it is there once
        if late:
            polled.archived += 1
        else:
            polled.issues.append(issue.id)
    state.archived += polled.archived
    state.issues_made += len(polled.issues)
    for skipped in report.skipped:
        log.info("feed %s: skipped %s: %s", feed.url, skipped.name, skipped.reason)
    return polled


def poll_feed(session: Session, feed: Feed, fetching: Fetching) -> Polled:
    """Poll ``feed`` once: archive the back catalogue at the first poll, then make new issues."""
    state = feed_state(session, feed)
    etag, modified = state.etag, state.last_modified
    session.commit()  # no transaction (no SQLite write lock) held through the fetch
    try:
        got = fetch(
            feed.url,
            allow=fetching.allow,
            max_bytes=fetching.max_bytes,
            etag=etag,
            last_modified=modified,
        )
        items = list(feed_entries(parse_feed(got.body, "the feed"))) if got.status == 200 else []
    except (FetchError, SourceError) as exc:
        return _failed(session, feed, str(exc))
    now = utcnow()
    state = feed_state(session, feed)
    if got.status == 304:
        polled = Polled("304")
    elif state.started_at is None:
        try:
            report = import_entries(session, feed.url, items)
        except Conflict:
            return Polled("busy")  # another worker's first poll archived them just now
        state = feed_state(session, feed)
        state.started_at = now
        state.archived += len(report.added)
        polled = Polled("200", archived=len(report.added))
    else:
        polled = _new_items(session, state, feed, items)
    if got.status == 200:
        state.items_seen = len(items)
        state.etag, state.last_modified = got.etag, got.last_modified
    state.last_poll_at = state.last_ok_at = now
    state.last_status = polled.status
    state.failures = 0
    session.commit()
    if polled.archived or polled.issues:
        log.info("feed %s: %s archived, new issues %s", feed.url, polled.archived, polled.issues)
    return polled
