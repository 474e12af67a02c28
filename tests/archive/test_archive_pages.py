"""The archive sells the newsletter: excerpts, tags, search, a form on every tip, fast at 2,000."""

from __future__ import annotations

import re
import time
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta

import sqlalchemy as sa

from newsletter.archive.tables import ArchiveTag, IssueSource
from newsletter.extensions import db
from newsletter.models import Issue, IssueStatus, Subscriber
from tests.archive.exports import Post, markdown_folder, medium_export, weekly
from tests.archive.test_import import counts, run_import
from tests.helpers import csrf_from

START = datetime(2016, 1, 4, 9, 0, tzinfo=UTC)
WORDS = ("grep", "rsync", "tmux", "git", "awk", "curl", "jq", "make")


def add_tips(n: int) -> None:
    """Insert ``n`` archived tips with sources and tags, as an import of that size leaves them."""
    db.session.execute(
        sa.insert(Issue),
        [
            {
                "slug": f"tip-{i}",
                "subject": f"Tip {i}: {WORDS[i % len(WORDS)]} in depth",
                "body_md": f"Number {i}. Use **{WORDS[i % len(WORDS)]}** well.\n\n"
                + "Text. " * 400,
                "status": IssueStatus.ARCHIVED,
            }
            for i in range(1, n + 1)
        ],
    )
    ids = dict(db.session.execute(sa.select(Issue.slug, Issue.id)).all())
    db.session.execute(
        sa.insert(IssueSource),
        [
            {
                "issue_id": ids[f"tip-{i}"],
                "key": f"{i:064d}",
                "ident": f"post-{i}",
                "url": f"https://blog.example.org/tip-{i}",
                "origin": "markdown",
                "published_at": START + timedelta(days=i),
            }
            for i in range(1, n + 1)
        ],
    )
    db.session.execute(
        sa.insert(ArchiveTag),
        [{"issue_id": ids[f"tip-{i}"], "name": WORDS[i % len(WORDS)]} for i in range(1, n + 1)],
    )
    db.session.commit()


@contextmanager
def statements() -> Iterator[list[str]]:
    """Record every SQL statement the app runs meanwhile."""
    seen: list[str] = []

    def record(_conn, _cursor, statement, *_args) -> None:
        seen.append(statement)

    sa.event.listen(db.engine, "before_cursor_execute", record)
    try:
        yield seen
    finally:
        sa.event.remove(db.engine, "before_cursor_execute", record)


def titles(html: str) -> list[str]:
    return re.findall(r'<h2><a href="/archive/[^"]+">([^<]+)</a></h2>', html)


def test_each_tip_has_an_excerpt_its_tags_a_canonical_link_and_a_subscribe_form(
    archive_app, client, tmp_path, inbox
):
    posts = weekly(2)
    posts[0].tags = ("shell", "history")
    markdown_folder(tmp_path / "md", posts)
    medium = Post(9, title="From Medium")
    export = tmp_path / "medium.zip"
    export.write_bytes(medium_export([medium]))
    run_import(archive_app, tmp_path / "md")
    run_import(archive_app, export)
    html = client.get("/archive").get_data(as_text=True)
    assert "Tip number 1. Run tool --1." in html  # the excerpt, as text
    assert '<a href="/archive?tag=shell">shell</a>' in html
    page = client.get(f"/archive/{posts[0].slug}").get_data(as_text=True)
    assert f'<link rel="canonical" href="http://newsletter.test/archive/{posts[0].slug}">' in page
    assert '<a href="/archive?tag=history">history</a>' in page
    assert 'action="/subscribe"' in page and 'name="email"' in page
    from_blog = client.get("/archive/tip-9-use-the-tool").get_data(as_text=True)
    assert f'<link rel="canonical" href="{medium.link}">' in from_blog
    assert f'First published on <a href="{medium.link}" rel="noopener">the blog</a>.' in from_blog
    # The form on a tip's page signs a reader up like the front page's.
    answer = client.post(
        "/subscribe", data={"csrf_token": csrf_from(from_blog), "email": "new@example.com"}
    )
    assert answer.status_code in (302, 303)
    assert db.session.scalar(sa.select(Subscriber.email)) == "new@example.com"


def test_search_matches_every_word_in_titles_or_bodies(archive_app, client):
    add_tips(40)
    html = client.get("/archive?q=TMUX").get_data(as_text=True)
    assert titles(html) and all("tmux" in t for t in titles(html))
    assert 'id="tip-count">5 tips<' in html
    both = client.get("/archive?q=tmux+number+10").get_data(as_text=True)
    assert titles(both) == ["Tip 10: tmux in depth"]
    body_only = client.get("/archive?q=Number+33.").get_data(as_text=True)
    assert titles(body_only) == ["Tip 33: rsync in depth"]
    nothing = client.get("/archive?q=%25_").get_data(as_text=True)  # no wildcards
    assert 'id="no-match"' in nothing and titles(nothing) == []
    long = client.get("/archive?q=" + "x" * 5000)
    assert long.status_code == 200


def test_tags_filter_and_pages_keep_the_filter(archive_app, client):
    add_tips(200)
    first = client.get("/archive?tag=grep").get_data(as_text=True)
    assert 'id="tip-count">25 tips<' in first
    assert len(titles(first)) == 20 and all("grep" in t for t in titles(first))
    assert 'href="/archive?page=2&amp;tag=grep" rel="next"' in first
    second = client.get("/archive?page=2&tag=grep").get_data(as_text=True)
    assert len(titles(second)) == 5 and 'rel="next"' not in second
    assert client.get("/archive?page=3&tag=grep").status_code == 404
    cloud = client.get("/archive").get_data(as_text=True)
    assert '<a href="/archive?tag=grep">grep <span class="muted">25</span></a>' in cloud


def test_two_thousand_tips_cost_a_few_queries_a_page_and_stay_fast(archive_app, client):
    add_tips(2000)
    client.get("/archive")  # warm the templates
    for url in (
        "/archive",
        "/archive?page=100",
        "/archive?q=rsync+depth",
        "/archive?tag=awk&page=3",
        "/archive/tip-1500",
        "/feed.xml",
    ):
        with statements() as seen:
            began = time.perf_counter()
            response = client.get(url)
            took = time.perf_counter() - began
        assert response.status_code == 200, url
        assert len(seen) <= 6, (url, seen)
        assert took < 1.5, (url, took)
    newest = client.get("/archive").get_data(as_text=True)
    assert titles(newest)[0] == "Tip 2000: grep in depth"
    oldest = client.get("/archive?page=100").get_data(as_text=True)
    assert titles(oldest)[-1] == "Tip 1: rsync in depth"
    entries = ET.fromstring(client.get("/feed.xml").data)
    assert len(entries.findall("{http://www.w3.org/2005/Atom}entry")) == 20


def test_import_then_search_finds_a_post_by_a_word_of_its_body(archive_app, client, tmp_path):
    posts = weekly(3)
    markdown_folder(tmp_path / "md", posts)
    assert counts(run_import(archive_app, tmp_path / "md")[1]) == (3, 0, 0)
    html = client.get("/archive?q=--2").get_data(as_text=True)
    assert titles(html) == [posts[1].title]


def test_the_front_page_shows_the_latest_tips_of_the_back_catalogue(archive_app, client):
    add_tips(12)
    html = client.get("/").get_data(as_text=True)
    latest = re.findall(r'<li><a href="/archive/(tip-\d+)">', html)
    assert latest == ["tip-12", "tip-11", "tip-10", "tip-9", "tip-8"]
    assert "Jan 16, 2016" in html  # tip 12's date on the blog
