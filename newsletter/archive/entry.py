"""One post of a back catalogue as every source reads it, and what a source may not be."""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from newsletter.archive.tables import MAX_TAG
from newsletter.errors import Invalid

# A source bigger than this is refused before it is read: a blog's whole history in a feed or
# an export is a few MB (476 posts of Medium's export: about 9 MB of HTML).
MAX_SOURCE_BYTES = 50 * 1024 * 1024 - 1
MAX_ENTRIES = 20_000
MAX_TITLE = 200
MAX_BODY = 200_000
MAX_TAGS = 20
# Query parameters that only say how a reader arrived (Medium adds ?source=rss-…).
# Medium ends each post's path with a 12-hex id that is not part of the post's name.
_MEDIUM_ID = re.compile(r"-[0-9a-f]{10,12}$")
_TRACKING = re.compile(r"^(?:utm_.*|source|sk|gi|fbclid|gclid|mc_cid|mc_eid)$", re.IGNORECASE)


class SourceError(Invalid):
    """The source as a whole cannot be imported (not a feed, too large, unsafe); nothing was."""

    def __init__(self, message: str) -> None:
        super().__init__("source", message)


@dataclass(frozen=True)
class Entry:
    """A post ready to become an archived issue."""

    origin: str  # feed, markdown, medium, substack, html
    ident: str  # the entry's id as the source gives it: guid, canonical link, file name
    title: str
    published_at: datetime
    body_md: str
    url: str = ""  # the canonical link to the post on the blog
    slug: str = ""  # wished for; made unique when stored
    tags: tuple[str, ...] = field(default_factory=tuple)

    @property
    def key(self) -> str:
        """Return the hash that makes the entry unique, whoever imports it and how often."""
        return digest(f"{self.origin}:{self.ident}")

    @property
    def url_key(self) -> str | None:
        """Return the hash of the canonical link, or None when the entry has none."""
        return digest(normal_url(self.url)) if self.url else None


@dataclass(frozen=True)
class Skipped:
    """An entry left out, and why (shown in the report and logged)."""

    name: str
    reason: str


def digest(text: str) -> str:
    """Return the SHA-256 of ``text`` in hex: a fixed-length key however long the id."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def normal_url(url: str) -> str:
    """Return a link as compared across sources: no tracking parameters, fragment or last /."""
    parts = urlsplit(url.strip())
    query = urlencode([(k, v) for k, v in parse_qsl(parts.query) if not _TRACKING.match(k)])
    path = parts.path.rstrip("/") or "/"
    return urlunsplit((parts.scheme.lower(), parts.netloc.lower(), path, query, ""))


def slug_from_url(url: str) -> str:
    """Return the name a blog gave a post in its link (its last path segment), or ""."""
    last = urlsplit(url).path.rstrip("/").rsplit("/", 1)[-1]
    last = re.sub(r"\.html?$", "", last)
    return _MEDIUM_ID.sub("", last) if last and not last.startswith("@") else ""


def when(value: object) -> datetime | None:
    """Read a date as sources write it (ISO 8601 text, a date, a datetime); None if unreadable.

    A date without a time is midnight UTC; a time without a zone is taken as UTC.
    """
    if isinstance(value, datetime):
        moment = value
    elif isinstance(value, date):
        moment = datetime.combine(value, time(0, 0))
    elif isinstance(value, str) and value.strip():
        text = value.strip().replace(" ", "T", 1) if len(value.strip()) > 10 else value.strip()
        try:
            moment = datetime.fromisoformat(text)
        except ValueError:
            return None
    else:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    if not 1970 <= moment.year <= 2200:
        return None
    return moment.astimezone(UTC)


def clean_title(title: str) -> str:
    """Return a title on one line, cut to what an issue's subject holds."""
    title = " ".join(title.split())
    return title if len(title) <= MAX_TITLE else title[: MAX_TITLE - 1].rstrip() + "…"


def clean_tags(raw: object) -> tuple[str, ...]:
    """Return tags from a list or a comma-separated text: trimmed, lower case, no repeats."""
    items = raw.split(",") if isinstance(raw, str) else raw if isinstance(raw, list) else []
    tags: list[str] = []
    for item in items:
        if not isinstance(item, str | int | float):
            continue
        tag = " ".join(str(item).split()).lower()[:MAX_TAG]
        if tag and tag not in tags:
            tags.append(tag)
    return tuple(tags[:MAX_TAGS])


def check_entry(entry: Entry) -> str | None:
    """Return why an entry cannot become an issue, or None when it can."""
    if not entry.title:
        return "no title"
    if not entry.body_md.strip():
        return "empty body"
    if len(entry.body_md) > MAX_BODY:
        return f"body longer than {MAX_BODY} characters"
    if len(entry.ident) > 500:
        return "id longer than 500 characters"
    return None
