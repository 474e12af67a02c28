"""Back catalogues as publishers bring them: feeds, Medium's and Substack's exports, Markdown.

Built here from what those formats hold (Medium's export: one page per post under posts/,
marked up as an h-entry; Substack's: posts.csv plus posts/<post_id>.<slug>.html bodies), so
each test can make the catalogue it needs, of any size.
"""

from __future__ import annotations

import io
import zipfile
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from html import escape
from pathlib import Path


@dataclass
class Post:
    number: int
    title: str = ""
    body: str = ""  # HTML
    published: datetime = field(default_factory=lambda: datetime(2020, 1, 6, 9, 0, tzinfo=UTC))
    slug: str = ""
    tags: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        self.title = self.title or f"Tip {self.number}: use the tool {self.number}"
        self.slug = self.slug or f"tip-{self.number}-use-the-tool"
        self.body = self.body or (
            f"<p>Tip number {self.number}. Run <code>tool --{self.number}</code> and save an "
            f"hour.</p><ul><li>first step {self.number}</li><li>second step</li></ul>"
        )

    @property
    def link(self) -> str:
        return f"https://medium.com/@author/{self.slug}-{self.number:012x}"


def weekly(count: int, start: datetime | None = None) -> list[Post]:
    """Return ``count`` posts, one a week, oldest first."""
    first = start or datetime(2016, 1, 4, 9, 0, tzinfo=UTC)
    return [Post(n, published=first + timedelta(weeks=n - 1)) for n in range(1, count + 1)]


# --- feeds ----------------------------------------------------------------------------------------


def rss(posts: list[Post], *, title: str = "The Tip Blog", medium_furniture: bool = False) -> bytes:
    """An RSS 2.0 feed as Medium serves one: guid, link, pubDate, content:encoded."""
    items = []
    for post in reversed(posts):
        body = post.body
        if medium_furniture:
            body = (
                f"<h3>{escape(post.title)}</h3>{body}"
                f'<img src="https://medium.com/_/stat?event=post.clientViewed&amp;referrerSource='
                f'full_rss&amp;postId={post.number:x}" width="1" height="1" alt="">'
                f'<hr><p><a href="{post.link}">{escape(post.title)}</a> was originally published '
                'in <a href="https://medium.com/tips">Tips</a> on Medium, where people are '
                "continuing the conversation by highlighting and responding to this story.</p>"
            )
        categories = "".join(f"<category>{escape(t)}</category>" for t in post.tags)
        items.append(
            f"<item><title>{escape(post.title)}</title>"
            f'<guid isPermaLink="false">https://medium.com/p/{post.number:012x}</guid>'
            f"<link>{post.link}?source=rss----tips---4</link>{categories}"
            f"<pubDate>{format_datetime(post.published, usegmt=True)}</pubDate>"
            f"<content:encoded><![CDATA[{body}]]></content:encoded></item>"
        )
    return (
        '<?xml version="1.0" encoding="UTF-8"?>'
        '<rss version="2.0" xmlns:content="http://purl.org/rss/1.0/modules/content/">'
        f"<channel><title>{escape(title)}</title><link>https://medium.com/tips</link>"
        f"<description>Tips</description>{''.join(items)}</channel></rss>"
    ).encode()


def atom(posts: list[Post]) -> bytes:
    """An Atom feed: id, link, published, content type html."""
    entries = "".join(
        f"<entry><id>tag:blog.example.org,2020:{p.number}</id><title>{escape(p.title)}</title>"
        f'<link rel="alternate" href="https://blog.example.org/{p.slug}/"/>'
        f"<published>{p.published.isoformat()}</published>"
        f"<updated>{p.published.isoformat()}</updated>"
        f'<content type="html">{escape(p.body)}</content></entry>'
        for p in reversed(posts)
    )
    return (
        '<?xml version="1.0" encoding="utf-8"?><feed xmlns="http://www.w3.org/2005/Atom">'
        "<title>Blog</title><id>tag:blog.example.org,2020:feed</id>"
        f"<updated>2024-01-01T00:00:00Z</updated>{entries}</feed>"
    ).encode()


# --- Medium's export --------------------------------------------------------------------------


def medium_page(post: Post, *, draft: bool = False) -> str:
    """One post's page as Medium's export writes it, byline, reading time and footer too."""
    published = (
        ""
        if draft
        else (
            f'<a href="https://medium.com/p/{post.number:012x}"><time class="dt-published" '
            f'datetime="{post.published.isoformat(timespec="milliseconds").replace("+00:00", "Z")}'
            f'">{post.published:%B %d, %Y}</time></a>'
        )
    )
    canonical = "" if draft else f'<a href="{post.link}" class="p-canonical">Canonical link</a>'
    return (
        '<!DOCTYPE html><html><head><meta http-equiv="Content-Type" content="text/html; '
        f'charset=utf-8"><title>{escape(post.title)}</title><style>body{{margin:0}}</style>'
        '</head><body><article class="h-entry">'
        f'<header><h1 class="p-name">{escape(post.title)}</h1></header>'
        '<section data-field="subtitle" class="p-summary">A tip a week</section>'
        '<section data-field="body" class="e-content"><section name="a1b2" class="section '
        'section--body section--first section--last"><div class="section-divider"><hr '
        'class="section-divider"></div><div class="section-content"><div class="section-inner '
        'sectionLayout--insetColumn">'
        f'<h3 name="t1" class="graf graf--h3 graf--leading graf--title">{escape(post.title)}</h3>'
        '<h4 name="s1" class="graf graf--h4 graf--subtitle">A tip a week</h4>'
        '<p class="graf graf--p">Ada Author · Follow</p><p class="graf graf--p">3 min read</p>'
        f"{post.body}"
        '<p class="graf graf--p graf--trailing">If you liked this tip, subscribe to the '
        "newsletter and get one every week in your inbox.</p>"
        "</div></div></section></section><footer><p>By "
        '<a href="https://medium.com/@author" class="p-author h-card">Ada Author</a> on '
        f"{published}.</p><p>{canonical}</p><p>Exported from "
        '<a href="https://medium.com">Medium</a> on December 1, 2026.</p></footer></article>'
        "</body></html>"
    )


def medium_export(posts: list[Post], *, drafts: int = 0) -> bytes:
    """Medium's export ZIP: posts/ (with drafts), and pages that are not posts beside it."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("README.html", "<html><body><h1>Your Medium archive</h1></body></html>")
        zf.writestr("profile/profile.html", "<html><body><h1>Ada Author</h1></body></html>")
        zf.writestr("claps/claps-0001.html", "<html><body><h1>Claps</h1></body></html>")
        for post in posts:
            name = f"posts/{post.published:%Y-%m-%d}_{post.slug.title()}-{post.number:012x}.html"
            zf.writestr(name, medium_page(post))
        for n in range(drafts):
            draft = medium_page(Post(900 + n), draft=True)
            zf.writestr(f"posts/draft_Unfinished-{n:012x}.html", draft)
    return buffer.getvalue()


# --- Substack's export ------------------------------------------------------------------------


def substack_export(posts: list[Post], *, drafts: int = 0) -> bytes:
    """Substack's export ZIP: posts.csv and posts/<post_id>.<slug>.html (body only)."""
    buffer = io.BytesIO()
    header = "post_id,post_date,is_published,email_sent_at,type,audience,title,subtitle,slug\n"
    rows = []
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as zf:
        for post in posts:
            post_id = 1000 + post.number
            stamp = post.published.isoformat(timespec="milliseconds").replace("+00:00", "Z")
            rows.append(
                f'{post_id},{stamp},true,{stamp},newsletter,everyone,"{post.title}",'
                f'"Subtitle of {post.number}",{post.slug}\n'
            )
            zf.writestr(f"posts/{post_id}.{post.slug}.html", post.body)
        for n in range(drafts):
            rows.append(f'{5000 + n},,false,,newsletter,everyone,"Draft {n}",,draft-{n}\n')
            zf.writestr(f"posts/{5000 + n}.draft-{n}.html", "<p>not yet</p>")
        zf.writestr("posts.csv", header + "".join(rows))
        zf.writestr("email_list.csv", "email,active_subscription\nreader@example.com,true\n")
    return buffer.getvalue()


# --- Markdown -------------------------------------------------------------------------------


def markdown_post(post: Post, *, extra: str = "") -> str:
    tags = ", ".join(post.tags)
    return (
        f'---\ntitle: "{post.title}"\ndate: {post.published:%Y-%m-%d}\nslug: {post.slug}\n'
        f"tags: [{tags}]\n{extra}---\n\nTip number {post.number}. Run `tool --{post.number}`.\n\n"
        f"- first step {post.number}\n- second step\n"
    )


def markdown_folder(folder: Path, posts: list[Post]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for post in posts:
        (folder / f"{post.published:%Y-%m-%d}-{post.slug}.md").write_text(
            markdown_post(post), encoding="utf-8"
        )
    return folder


def zip_folder(folder: Path) -> bytes:
    """ZIP a folder as people do: every path under the folder's own name."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as zf:
        for path in sorted(folder.rglob("*")):
            if path.is_file():
                zf.write(path, f"{folder.name}/{path.relative_to(folder).as_posix()}")
    return buffer.getvalue()
