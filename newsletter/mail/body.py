"""Issue bodies: Markdown to sanitised HTML and to plain text, and slugs from subjects.

A body is rendered here, outside Jinja, and handed to the email template as finished
markup: ``{{ ... }}`` in a body is text, never a template expression.
"""

from __future__ import annotations

import html
import re
import unicodedata
from dataclasses import dataclass
from html.parser import HTMLParser
from urllib.parse import urljoin, urlsplit

import markdown
import nh3

ALLOWED_TAGS = {
    "a", "abbr", "b", "blockquote", "br", "caption", "code", "del", "div", "em", "h1", "h2",
    "h3", "h4", "h5", "h6", "hr", "i", "img", "ins", "kbd", "li", "ol", "p", "pre", "s",
    "small", "span", "strong", "sub", "sup", "table", "tbody", "td", "tfoot", "th", "thead",
    "tr", "u", "ul",
}  # fmt: skip
ALLOWED_ATTRIBUTES = {
    "a": {"href", "title"},
    "img": {"src", "alt", "title", "width", "height"},
    "td": {"align", "colspan", "rowspan"},
    "th": {"align", "colspan", "rowspan"},
    "code": {"class"},
    "abbr": {"title"},
}
URL_SCHEMES = {"http", "https", "mailto"}
_MD_EXTENSIONS = ["fenced_code", "tables", "sane_lists", "nl2br"]


@dataclass(frozen=True)
class Body:
    html: str
    text: str


def render_body(body_md: str, base_url: str) -> Body:
    """Render a Markdown body to safe HTML and to plain text, every link made absolute."""
    html_out = markdown_to_html(body_md, base_url)
    return Body(html_out, html_to_text(html_out))


def markdown_to_html(body_md: str, base_url: str) -> str:
    """Return sanitised HTML for a Markdown body: no scripts, handlers or javascript: links."""
    raw = markdown.markdown(body_md or "", extensions=_MD_EXTENSIONS, output_format="html")
    base = base_url.rstrip("/") + "/"

    def absolute(tag: str, attr: str, value: str) -> str | None:
        if attr in ("href", "src"):
            value = value.strip()
            if value.startswith("#"):
                return value
            if not urlsplit(value).scheme:
                # A relative link means nothing in a mailbox: anchor it to the site.
                return urljoin(base, value)
        return value

    return nh3.clean(
        raw,
        tags=ALLOWED_TAGS,
        attributes=ALLOWED_ATTRIBUTES,
        url_schemes=URL_SCHEMES,
        link_rel="noopener noreferrer",
        attribute_filter=absolute,
    ).strip()


_BLOCK = {"p", "div", "blockquote", "pre", "table", "ul", "ol", "h1", "h2", "h3", "h4", "h5",
          "h6", "hr", "tr"}  # fmt: skip


class _TextWriter(HTMLParser):
    """Turn the sanitised HTML into readable plain text: links as 'text (url)'."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.out: list[str] = []
        self.href: list[str | None] = []
        self.link_text: list[str] = []
        self.pre = 0
        self.lists: list[list[int]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        if tag in _BLOCK:
            self._block()
        if tag == "br":
            self.out.append("\n")
        elif tag == "pre":
            self.pre += 1
        elif tag in ("ul", "ol"):
            self.lists.append([0 if tag == "ol" else -1])
        elif tag == "li":
            self.out.append("\n")
            counter = self.lists[-1] if self.lists else [-1]
            indent = "  " * max(len(self.lists) - 1, 0)
            if counter[0] >= 0:
                counter[0] += 1
                self.out.append(f"{indent}{counter[0]}. ")
            else:
                self.out.append(f"{indent}- ")
        elif tag == "a":
            self.href.append(a.get("href"))
            self.link_text.append("")
        elif tag == "img":
            alt, src = a.get("alt") or "image", a.get("src") or ""
            self.out.append(f"[{alt}]({src})" if src else alt)
        elif tag in ("h1", "h2", "h3"):
            self.out.append("## " if tag != "h1" else "# ")
        elif tag in ("td", "th"):
            self.out.append(" | ")

    def handle_endtag(self, tag: str) -> None:
        if tag == "a" and self.href:
            href = self.href.pop()
            label = self.link_text.pop()
            if href and href.rstrip("/") != label.strip().rstrip("/") and not href.startswith("#"):
                self.out.append(f" ({href.removeprefix('mailto:')})")
        elif tag == "pre":
            self.pre = max(self.pre - 1, 0)
        elif tag in ("ul", "ol") and self.lists:
            self.lists.pop()
        if tag in _BLOCK:
            self._block()

    def handle_data(self, data: str) -> None:
        if not self.pre:
            data = re.sub(r"\s+", " ", data)
        if self.link_text:
            self.link_text[-1] += data
        self.out.append(data)

    def _block(self) -> None:
        self.out.append("\n\n")

    def text(self) -> str:
        joined = "".join(self.out)
        lines = [line.rstrip() for line in joined.split("\n")]
        return re.sub(r"\n{3,}", "\n\n", "\n".join(lines)).strip() + "\n"


def html_to_text(html_in: str) -> str:
    """Return the plain-text reading of sanitised HTML."""
    writer = _TextWriter()
    writer.feed(html_in)
    writer.close()
    return writer.text()


def slugify(subject: str, max_length: int = 80) -> str:
    """Return a URL slug for a subject: lower-case ASCII words joined by hyphens."""
    ascii_text = unicodedata.normalize("NFKD", subject).encode("ascii", "ignore").decode()
    slug = re.sub(r"[^a-z0-9]+", "-", ascii_text.lower()).strip("-")
    return slug[:max_length].rstrip("-") or "issue"


def escape(text: str) -> str:
    """Escape text for HTML (re-exported so callers need not import html)."""
    return html.escape(text)
