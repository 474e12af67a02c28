"""What ``issues import SOURCE`` may be: a feed (file or URL), a folder, a ZIP, one post file.

``read_path``, ``read_url`` and ``read_upload`` each return every entry of the source (or
why it was skipped) before anything is stored, so the store can take all of it or none.
"""

from __future__ import annotations

from collections.abc import Callable, Collection
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from newsletter.archive.bundle import Bundle, FolderBundle, ZipBundle, open_path
from newsletter.archive.entry import MAX_ENTRIES, MAX_SOURCE_BYTES, Entry, Skipped, SourceError
from newsletter.archive.exports import HTML, MARKDOWN, bundle_entries
from newsletter.archive.feeds import feed_entries, parse_feed
from newsletter.archive.fetch import FetchError, fetch
from newsletter.config import Settings
from newsletter.webhooks.address import normalise_host

Items = list[Entry | Skipped]
Tick = Callable[[int], None]


@dataclass(frozen=True)
class Fetching:
    """What fetching a URL may do: the hosts allowed although internal, the size limit."""

    allow: Collection[str] = ()
    max_bytes: int = MAX_SOURCE_BYTES


def fetching_for(settings: Settings) -> Fetching:
    """Return the fetch rules of these settings: FEED_ALLOW_HOSTS, and FEED_URL's own host.

    FEED_URL is the operator's own choice, so its host is trusted even on an internal network
    (a blog on the same machine); a redirect from it to any other internal host is not.
    """
    allow = set(settings.feed_allow_hosts)
    host = urlsplit(settings.feed.url).hostname if settings.feed is not None else None
    if host:
        allow.add(normalise_host(host))
    return Fetching(frozenset(allow), MAX_SOURCE_BYTES)


class _OneFile(Bundle):
    """A single Markdown or HTML post given on its own."""

    def __init__(self, name: str, data: bytes) -> None:
        super().__init__(name)
        self.data = data

    def names(self) -> list[str]:
        return [self.label]

    def read(self, name: str) -> bytes:
        return self.data


def _collect(bundle: Bundle, tick: Tick | None) -> Items:
    items: Items = []
    try:
        for item in bundle_entries(bundle):
            items.append(item)
            if len(items) > MAX_ENTRIES:
                raise SourceError(f"{bundle.label} holds more than {MAX_ENTRIES} posts.")
            if tick is not None:
                tick(len(items))
    finally:
        bundle.close()
    return items


def read_bytes(name: str, data: bytes, tick: Tick | None = None) -> Items:
    """Read a source given as a file's name and content: a ZIP, a post, or a feed."""
    if len(data) > MAX_SOURCE_BYTES:
        raise SourceError(f"{name} is larger than {(MAX_SOURCE_BYTES + 1) >> 20} MB.")
    if data[:4] == b"PK\x03\x04" or name.lower().endswith(".zip"):
        return _collect(ZipBundle(data, name), tick)
    if name.lower().endswith(MARKDOWN + HTML):
        return _collect(_OneFile(Path(name).name, data), tick)
    return list(feed_entries(parse_feed(data, name)))


def read_path(path: Path, tick: Tick | None = None) -> Items:
    """Read a source named on the command line: a folder, a ZIP, a post or a feed file."""
    if not path.exists():
        raise SourceError(f"{path} does not exist.")
    try:
        if path.is_dir():
            return _collect(FolderBundle(path), tick)
        if path.stat().st_size > MAX_SOURCE_BYTES:
            raise SourceError(f"{path.name} is larger than {(MAX_SOURCE_BYTES + 1) >> 20} MB.")
        if path.suffix.lower() == ".zip":
            return _collect(open_path(path), tick)
        return read_bytes(path.name, path.read_bytes(), tick)
    except OSError as exc:
        raise SourceError(f"{path} could not be read ({exc.strerror or exc}).") from None


def read_url(url: str, fetching: Fetching, tick: Tick | None = None) -> Items:
    """Fetch a feed or an export's ZIP from a public URL and read it."""
    try:
        got = fetch(url, allow=fetching.allow, max_bytes=min(fetching.max_bytes, MAX_SOURCE_BYTES))
    except FetchError as exc:
        raise SourceError(f"{url}: {str(exc).rstrip('.')}.") from None
    name = got.url.rstrip("/").rsplit("/", 1)[-1] or "feed"
    return read_bytes(name if name.lower().endswith(".zip") else "the feed", got.body, tick)


def is_url(source: str) -> bool:
    """Say whether a SOURCE names a URL rather than a file or folder."""
    return source.lower().startswith(("http://", "https://"))
