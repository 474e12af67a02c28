"""Posts from a folder or ZIP: Markdown with front matter, Medium's export, Substack's export.

Which kind a bundle is, is read from what it holds: a ``posts.csv`` is Substack's export,
Markdown files are a static site's posts, HTML files are Medium's export (or any page that
marks its post up as an ``h-entry``, or at least has a title and a date).
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Iterator
from pathlib import PurePosixPath
from typing import Any

import yaml
from bs4 import BeautifulSoup, Tag

from newsletter.archive.bundle import Bundle, each_file
from newsletter.archive.clean import tag_to_markdown, to_markdown
from newsletter.archive.entry import (
    Entry,
    Skipped,
    SourceError,
    clean_tags,
    clean_title,
    slug_from_url,
    when,
)

MARKDOWN = (".md", ".markdown", ".mdown")
HTML = (".html", ".htm")
MAX_FRONT_MATTER = 16 * 1024
_FRONT = re.compile(r"\A\ufeff?---[ \t]*\r?\n(.*?)\r?\n(?:---|\.\.\.)[ \t]*(?:\r?\n|\Z)", re.S)


class _NoAliases(yaml.SafeLoader):
    """Safe YAML without anchors and aliases: a few lines cannot stand for gigabytes."""

    def compose_node(self, parent: Any, index: Any) -> Any:
        if self.check_event(yaml.AliasEvent):
            raise yaml.YAMLError("aliases are not allowed in front matter")
        return super().compose_node(parent, index)


def _decode(data: bytes) -> str:
    return data.decode("utf-8-sig", errors="replace")


def kind_of(bundle: Bundle) -> str:
    """Say what a bundle holds: substack, markdown or html; raise SourceError if none."""
    names = [n.lower() for n in bundle.names()]
    if any(PurePosixPath(n).name == "posts.csv" for n in names):
        return "substack"
    if any(n.endswith(MARKDOWN) for n in names):
        return "markdown"
    if any(n.endswith(HTML) for n in names):
        return "html"
    raise SourceError(
        f"{bundle.label} holds no posts: expected Markdown files, HTML files (Medium's export) "
        "or Substack's export (posts.csv)."
    )


def bundle_entries(bundle: Bundle) -> Iterator[Entry | Skipped]:
    """Yield every post of a bundle as an Entry, or as Skipped with the reason."""
    kind = kind_of(bundle)
    if kind == "substack":
        yield from substack_entries(bundle)
    elif kind == "markdown":
        yield from markdown_entries(bundle)
    else:
        yield from html_entries(bundle)


# --- Markdown ----------------------------------------------------------------------------------


def _front_matter(text: str) -> tuple[dict[str, Any] | str, str]:
    """Return (front matter, body), or (why it is unreadable, "")."""
    match = _FRONT.match(text)
    if match is None:
        return "no front matter (--- title: … date: … --- at the top)", ""
    if len(match.group(1)) > MAX_FRONT_MATTER:
        return "front matter longer than 16 KB", ""
    try:
        meta = yaml.load(match.group(1), Loader=_NoAliases)  # noqa: S506 - a safe loader
    except yaml.YAMLError as exc:
        return f"front matter is not valid YAML ({str(exc).splitlines()[0]})", ""
    if not isinstance(meta, dict):
        return "front matter is not a set of fields", ""
    return meta, text[match.end() :]


def markdown_entries(bundle: Bundle) -> Iterator[Entry | Skipped]:
    """Yield the posts of Markdown files with ``title``, ``date``, optional ``slug``, ``tags``."""
    for name, member in each_file(bundle, MARKDOWN):
        meta, body = _front_matter(_decode(bundle.read(member)))
        if isinstance(meta, str):
            yield Skipped(name, meta)
            continue
        title = clean_title(str(meta.get("title") or ""))
        if not title:
            yield Skipped(name, "no title in the front matter")
            continue
        published = when(meta.get("date"))
        if published is None:
            yield Skipped(name, "no date (or an unreadable one) in the front matter")
            continue
        if meta.get("draft") is True:
            yield Skipped(name, "a draft (draft: true)")
            continue
        yield Entry(
            origin="markdown",
            ident=name,
            title=title,
            published_at=published,
            body_md=body.replace("\r\n", "\n").strip() + "\n",
            url=str(meta.get("canonical_url") or meta.get("url") or ""),
            slug=str(meta.get("slug") or PurePosixPath(name).stem),
            tags=clean_tags(meta.get("tags") or meta.get("categories") or []),
        )


# --- HTML pages: Medium's export, or any page with a title and a date ---------------------------


def _attr(tag: Tag | None, name: str) -> str:
    value = tag.get(name) if tag is not None else None
    return value if isinstance(value, str) else ""


def _first(soup: BeautifulSoup, *selectors: str) -> Tag | None:
    for selector in selectors:
        found = soup.select_one(selector)
        if found is not None:
            return found
    return None


def _page(name: str, html: str) -> Entry | Skipped:
    soup = BeautifulSoup(html, "html.parser")
    heading = _first(soup, "h1.p-name", "article h1", "h1", "title")
    title = clean_title(heading.get_text(" ") if heading else "")
    if not title:
        return Skipped(name, "no title (no <h1> or <title>)")
    stamp = _first(soup, "time.dt-published", "time[datetime]")
    published = when(_attr(stamp, "datetime"))
    if published is None:
        meta = soup.find("meta", attrs={"property": "article:published_time"})
        published = when(_attr(meta if isinstance(meta, Tag) else None, "content"))
    if published is None:
        if PurePosixPath(name).name.startswith("draft"):
            return Skipped(name, "a draft: never published")
        return Skipped(name, "no date (no <time datetime>)")
    canonical = _first(soup, "a.p-canonical", "link[rel=canonical]")
    url = _attr(canonical, "href")
    body = _first(soup, "section[data-field=body]", ".e-content", "article", "body")
    if body is None:
        return Skipped(name, "no body")
    origin = "medium" if soup.select_one("section[data-field=body]") else "html"
    slug = slug_from_url(url) if url else ""
    return Entry(
        origin=origin,
        ident=url or name,
        title=title,
        published_at=published,
        body_md=tag_to_markdown(body, title),
        url=url if url.startswith(("http://", "https://")) else "",
        slug=slug,
    )


def html_entries(bundle: Bundle) -> Iterator[Entry | Skipped]:
    """Yield the posts of a folder of HTML pages (Medium's export: only its ``posts/``)."""
    files = list(each_file(bundle, HTML))
    # Medium's export also holds pages of claps, bookmarks and a profile: posts/ is the posts.
    in_posts = [f for f in files if "posts" in PurePosixPath(f[1]).parts[:-1]]
    for name, member in in_posts or files:
        yield _page(name, _decode(bundle.read(member)))


# --- Substack's export --------------------------------------------------------------------------


def _find(names: list[str], wanted: str) -> str | None:
    for name in names:
        if name.lower() == wanted or name.lower().endswith("/" + wanted):
            return name
    return None


def substack_entries(bundle: Bundle) -> Iterator[Entry | Skipped]:
    """Yield the published posts of Substack's export: posts.csv and posts/<id>.<slug>.html."""
    names = bundle.names()
    index = _find(names, "posts.csv")
    assert index is not None  # kind_of() saw it
    try:
        rows = list(csv.DictReader(io.StringIO(_decode(bundle.read(index)))))
    except csv.Error as exc:
        raise SourceError(f"{bundle.label}: posts.csv is not readable CSV ({exc}).") from None
    if rows and "post_id" not in rows[0]:
        raise SourceError(f"{bundle.label}: posts.csv has no post_id column.")
    bodies = {PurePosixPath(n).name.lower(): n for n in names if n.lower().endswith(HTML)}
    for line, row in enumerate(rows, 2):
        post_id = (row.get("post_id") or "").strip()
        slug = (row.get("slug") or "").strip()
        name = f"posts.csv line {line}" + (f" ({post_id})" if post_id else "")
        if not post_id:
            yield Skipped(name, "no post_id")
            continue
        if (row.get("is_published") or "true").strip().lower() not in ("true", "1", "yes"):
            yield Skipped(name, "not published (a draft)")
            continue
        title = clean_title(row.get("title") or "")
        published = when(row.get("post_date") or "")
        if not title or published is None:
            yield Skipped(name, "no title" if not title else "no date (post_date)")
            continue
        number = post_id.split(".", 1)[0]
        candidates = [f"{post_id}.{slug}.html", f"{post_id}.html", f"{number}.{slug}.html"]
        member = next((bodies[c.lower()] for c in candidates if c.lower() in bodies), None)
        if member is None:
            yield Skipped(name, f"its body posts/{post_id}.{slug or '…'}.html is missing")
            continue
        subtitle = (row.get("subtitle") or "").strip()
        body = to_markdown(_decode(bundle.read(member)), title)
        yield Entry(
            origin="substack",
            ident=number,
            title=title,
            published_at=published,
            body_md=(f"*{subtitle}*\n\n" if subtitle else "") + body,
            slug=slug or (post_id.split(".", 1)[1] if "." in post_id else ""),
        )
