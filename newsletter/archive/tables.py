"""Tables of the back catalogue: where each imported issue came from, its tags, the polled feed."""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from newsletter.models import Model, UTCDateTime, utcnow

MAX_TAG = 50
MAX_URL = 1000


class IssueSource(Model):
    """Where an issue came from outside: a feed item, an exported post, a Markdown file.

    ``key`` is what makes an import idempotent: a hash of the entry's id (a feed's guid, a
    Medium post's canonical link, a Substack post id, a file name), unique, so the same entry
    never becomes two issues whoever imports or polls it, and however often. ``url_key``
    hashes the canonical link, so the same post reached by another route (a later export, the
    blog's feed) is found too.
    """

    __tablename__ = "issue_source"

    issue_id: Mapped[int] = mapped_column(
        sa.ForeignKey("issue.id", ondelete="CASCADE"), primary_key=True
    )
    key: Mapped[str] = mapped_column(sa.String(64), unique=True)
    ident: Mapped[str] = mapped_column(sa.String(500))  # the id as the source wrote it
    url: Mapped[str] = mapped_column(sa.String(MAX_URL), default="")  # the post on the blog
    url_key: Mapped[str | None] = mapped_column(sa.String(64), index=True)
    origin: Mapped[str] = mapped_column(sa.String(20))  # feed, markdown, medium, substack, html
    published_at: Mapped[datetime] = mapped_column(UTCDateTime(), index=True)
    imported_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class ArchiveTag(Model):
    """A tag an imported post carried (front matter ``tags``, a feed's categories)."""

    __tablename__ = "archive_tag"

    issue_id: Mapped[int] = mapped_column(
        sa.ForeignKey("issue.id", ondelete="CASCADE"), primary_key=True
    )
    name: Mapped[str] = mapped_column(sa.String(MAX_TAG), primary_key=True, index=True)


class FeedState(Model):
    """What the worker knows of the polled blog feed (``FEED_URL``): one row per feed URL.

    ``started_at`` is the first successful poll: what the feed held then is back catalogue,
    what appears after it becomes an issue. ``next_poll_at`` is claimed by a conditional
    UPDATE, so two workers' ticks never poll the same interval twice.
    """

    __tablename__ = "feed_state"

    id: Mapped[int] = mapped_column(primary_key=True)
    url_key: Mapped[str] = mapped_column(sa.String(64), unique=True)
    url: Mapped[str] = mapped_column(sa.String(MAX_URL))
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    next_poll_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    last_poll_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    last_ok_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    last_status: Mapped[str] = mapped_column(sa.String(20), default="")  # 200, 304, error
    last_error: Mapped[str] = mapped_column(sa.String(500), default="")
    last_error_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    failures: Mapped[int] = mapped_column(default=0)  # failed polls in a row
    etag: Mapped[str] = mapped_column(sa.String(300), default="")
    last_modified: Mapped[str] = mapped_column(sa.String(100), default="")
    items_seen: Mapped[int] = mapped_column(default=0)  # items of the last feed read
    archived: Mapped[int] = mapped_column(default=0)  # joined the archive (first poll)
    issues_made: Mapped[int] = mapped_column(default=0)  # new items made into issues


class CatalogueImport(Model):
    """An import the editor started from the browser (a file or a URL), run by a worker.

    ``data`` holds the uploaded file until the run is over; ``report_json`` what it did, or
    ``error`` why nothing was imported. ``attempt`` is raised at each claim, so a run taken
    back (its worker died) is claimed afresh; the import itself is all or nothing and adds
    nothing twice, so running it again is safe.
    """

    __tablename__ = "catalogue_import"

    id: Mapped[int] = mapped_column(primary_key=True)
    source: Mapped[str] = mapped_column(sa.String(MAX_URL))  # the file's name or the URL
    url: Mapped[str] = mapped_column(sa.String(MAX_URL), default="")
    data: Mapped[bytes | None] = mapped_column(sa.LargeBinary())
    status: Mapped[str] = mapped_column(sa.String(20), default="queued")  # running, done, failed
    attempt: Mapped[int] = mapped_column(default=0)
    report_json: Mapped[str] = mapped_column(sa.Text(), default="")
    error: Mapped[str] = mapped_column(sa.String(1000), default="")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    claimed_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
