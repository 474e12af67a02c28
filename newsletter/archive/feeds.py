"""An RSS or Atom feed's bytes into entries, read by feedparser (never fetched by it)."""

from __future__ import annotations

import calendar
import re
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import feedparser

from newsletter.archive.clean import plain_text, to_markdown
from newsletter.archive.entry import (
    MAX_ENTRIES,
    Entry,
    Skipped,
    SourceError,
    clean_tags,
    clean_title,
    slug_from_url,
)

# A feed has no use for its own entities; a DTD that declares some is the "billion laughs"
# (entities that expand to gigabytes) or an attempt to read files (external entities).
_ENTITY = re.compile(rb"<!ENTITY", re.IGNORECASE)


def parse_feed(data: bytes, name: str = "feed") -> feedparser.FeedParserDict:
    """Parse a feed document; raise SourceError when it is not one or declares entities."""
    if _ENTITY.search(data):
        raise SourceError(
            f"{name} declares XML entities, which feeds never need: refused (an entity "
            "expansion attack looks like this)."
        )
    # Bytes, never a string: feedparser would take a string for a URL or a file to open.
    parsed = feedparser.parse(data, sanitize_html=True, resolve_relative_uris=True)
    if not parsed.get("version") and not parsed.entries:
        reason = parsed.get("bozo_exception")
        detail = f" ({reason})" if reason else ""
        raise SourceError(f"{name} is not an RSS or Atom feed{detail}.")
    return parsed


def _moment(item: Any) -> datetime | None:
    for field in ("published_parsed", "updated_parsed", "created_parsed"):
        value = item.get(field)
        if value:
            try:
                return datetime.fromtimestamp(calendar.timegm(value), UTC)
            except (OverflowError, ValueError):
                return None
    return None


def _body(item: Any) -> str:
    contents = item.get("content") or []
    html = max((c.get("value", "") for c in contents), key=len, default="")
    return html or item.get("summary", "")


def _title(item: Any) -> str:
    detail = item.get("title_detail") or {}
    title = item.get("title", "")
    return plain_text(title) if "html" in (detail.get("type") or "") else title


def feed_entries(parsed: feedparser.FeedParserDict) -> Iterator[Entry | Skipped]:
    """Yield each item of a parsed feed as an Entry, or as Skipped with the reason."""
    if len(parsed.entries) > MAX_ENTRIES:
        raise SourceError(f"The feed has more than {MAX_ENTRIES} items.")
    for number, item in enumerate(parsed.entries, 1):
        link = item.get("link", "") or ""
        ident = item.get("id", "") or link
        title = clean_title(_title(item))
        name = title or ident or f"item {number}"
        if not ident:
            yield Skipped(name, "no id and no link")
            continue
        published = _moment(item)
        if published is None:
            yield Skipped(name, "no date")
            continue
        yield Entry(
            origin="feed",
            ident=ident,
            title=title,
            published_at=published,
            body_md=to_markdown(_body(item), title),
            url=link if link.startswith(("http://", "https://")) else "",
            slug=slug_from_url(link),
            tags=clean_tags([t.get("term", "") for t in item.get("tags") or []]),
        )
