"""A blog post's HTML into an issue's editable Markdown: blog boilerplate out, nh3, markdownify.

What a blog wraps around a post (Medium's title repeated as the first heading, the byline,
"3 min read", "Follow", the "subscribe" footer, a tracking pixel) is not the tip: it is dropped
before the HTML is cleaned, so the Markdown an editor gets holds the post and nothing else.
"""

from __future__ import annotations

import re

import nh3
from bs4 import BeautifulSoup, Tag
from markdownify import MarkdownConverter

from newsletter.mail.body import ALLOWED_ATTRIBUTES, ALLOWED_TAGS, URL_SCHEMES

# Structure a post may have beyond what an issue body allows; markdownify reads it.
_TAGS = ALLOWED_TAGS | {"figure", "figcaption", "section", "article", "header", "footer"}
# A whole block that says only one of these is the blog's furniture, not the post.
_FURNITURE = re.compile(
    r"^(?:\d+\s*min(?:ute)?s?\s+read|follow|following|listen|share|·|--|"
    r"(?:.{1,80}\s*·\s*)?follow(?:\s*·.{0,40})?|"
    r"(?:published in .{1,80}|sign up|sign in|open in app|member-only story))$",
    re.IGNORECASE,
)
# The last few blocks of a post that ask the reader to subscribe, or say where it came from.
_FOOTER = re.compile(
    r"(?:subscribe|sign up for|newsletter|in your inbox|follow me|clap|"
    r"was originally published in|on medium, where people are continuing the conversation)",
    re.IGNORECASE,
)
FOOTER_BLOCKS = 3
_BLOCK_TAGS = ("p", "div", "h1", "h2", "h3", "h4", "h5", "h6", "blockquote", "section", "figure")
_SPACES = re.compile(r"\s+")
_EDGE_RULES = re.compile(r"\A(?:(?:-{3,}|\*{3,}|_{3,})\s*)+|(?:\s*(?:-{3,}|\*{3,}|_{3,}))+\Z")


def _text(tag: Tag) -> str:
    return _SPACES.sub(" ", tag.get_text(" ")).strip()


def _leaf_blocks(root: Tag) -> list[Tag]:
    """Return the blocks that hold text directly, in document order (no block inside)."""
    blocks = root.find_all(_BLOCK_TAGS)
    holders: set[int] = set()  # blocks with a block inside: marked from below, in one pass
    for block in blocks:
        for parent in block.parents:
            if parent.name in _BLOCK_TAGS:
                if id(parent) in holders:
                    break
                holders.add(id(parent))
    return [block for block in blocks if id(block) not in holders]


def strip_boilerplate(soup: Tag, title: str = "") -> None:
    """Remove a blog's furniture from a post's HTML in place (see the module's docstring)."""
    for pixel in soup.find_all("img"):
        src = str(pixel.get("src") or "")
        if "/_/stat" in src or (str(pixel.get("width")) == "1" and str(pixel.get("height")) == "1"):
            pixel.decompose()
    blocks = _leaf_blocks(soup)
    wanted = _SPACES.sub(" ", title).strip().casefold()
    # The title again as the first heading (Medium repeats it in every post's body).
    for block in blocks[:3]:
        if block.name and block.name[0] == "h" and wanted and _text(block).casefold() == wanted:
            block.decompose()
            break
    for block in _leaf_blocks(soup):
        text = _text(block)
        if _FURNITURE.fullmatch(text) or "graf--subtitle" in (block.get("class") or []):
            block.decompose()
    for block in _leaf_blocks(soup)[-FOOTER_BLOCKS:]:
        text = _text(block)
        if len(text) < 300 and _FOOTER.search(text):
            block.decompose()


class _Converter(MarkdownConverter):
    """Markdown as an editor writes it: # headings, - bullets, fenced code."""

    def __init__(self) -> None:
        super().__init__(heading_style="ATX", bullets="-", code_language="", escape_misc=False)


def clean_html(html: str) -> str:
    """Return HTML with nothing executable left: no scripts, handlers or javascript: links."""
    return nh3.clean(
        html,
        tags=_TAGS,
        attributes=ALLOWED_ATTRIBUTES,
        url_schemes=URL_SCHEMES,
        link_rel=None,
    )


def to_markdown(html: str, title: str = "") -> str:
    """Turn a post's HTML into clean, editable Markdown without the blog's furniture."""
    return tag_to_markdown(BeautifulSoup(html, "html.parser"), title)


def tag_to_markdown(post: Tag, title: str = "") -> str:
    """Turn a parsed post (changed in place) into clean, editable Markdown."""
    # The furniture is found by the blog's own classes, which cleaning drops: strip it first.
    strip_boilerplate(post, title)
    cleaned = clean_html(post.decode_contents())
    markdown = _Converter().convert_soup(BeautifulSoup(cleaned, "html.parser"))
    lines = [line.rstrip() for line in markdown.replace("\r\n", "\n").split("\n")]
    text = re.sub(r"\n{3,}", "\n\n", "\n".join(lines)).strip()
    # A rule before the first word or after the last (Medium's section dividers) divides nothing.
    return _EDGE_RULES.sub("", text).strip() + "\n"


def plain_text(html: str) -> str:
    """Return the readable text of some HTML (a feed's title or summary may hold markup)."""
    soup = BeautifulSoup(clean_html(html), "html.parser")
    # Blocks end in a space, inline markup does not: "Run `tool`." stays "Run tool."
    for block in soup.find_all((*_BLOCK_TAGS, "li", "br", "tr", "td", "th", "pre")):
        block.append(" ")
    return _SPACES.sub(" ", soup.get_text()).strip()
