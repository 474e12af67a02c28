"""Bad sources: each a clear one-line error or a reported skip, and never half an import."""

from __future__ import annotations

import io
import zipfile

import pytest
import sqlalchemy as sa

from newsletter.archive.tables import IssueSource
from newsletter.extensions import db
from newsletter.models import Issue
from tests.archive.exports import Post, markdown_post, medium_export, rss, weekly
from tests.archive.test_import import counts, run_import

LAUGHS = (
    b'<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol">'
    + b"".join(
        f'<!ENTITY lol{n} "{f"&lol{n - 1};" * 10 if n > 1 else "&lol;" * 10}">'.encode()
        for n in range(1, 10)
    )
    + b']><rss version="2.0"><channel><title>&lol9;</title><item><title>x</title>'
    b"<guid>1</guid><pubDate>Tue, 02 Apr 2019 10:00:00 GMT</pubDate></item></channel></rss>"
)


def nothing_stored() -> bool:
    issues = db.session.scalar(sa.select(sa.func.count()).select_from(Issue))
    sources = db.session.scalar(sa.select(sa.func.count()).select_from(IssueSource))
    db.session.rollback()  # SQLite: a read holds the write lock until the transaction ends
    return not issues and not sources


def refused(app, source, expected: str, **env) -> None:
    code, lines, stderr = run_import(app, source, **env)
    assert code == 1, (lines, stderr)
    assert lines == []
    (line,) = stderr.strip().splitlines()
    assert expected in line, line
    assert "Traceback" not in stderr
    assert nothing_stored()


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (b"hello, I am not a feed", "is not an RSS or Atom feed"),
        (b"<html><body><p>a web page</p></body></html>", "is not an RSS or Atom feed"),
        (b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 4, "is not an RSS or Atom feed"),
        (LAUGHS, "declares XML entities"),
    ],
)
def test_a_file_that_is_not_a_feed_is_refused(archive_app, tmp_path, content, expected):
    path = tmp_path / "feed.xml"
    path.write_bytes(content)
    refused(archive_app, path, expected)


def test_a_50_mb_source_is_refused_before_it_is_read(archive_app, tmp_path, feed_server):
    big = tmp_path / "huge.xml"
    with big.open("wb") as handle:
        handle.truncate(50 * 1024 * 1024)
    refused(archive_app, big, "larger than 50 MB")
    url = feed_server.serve("/huge.xml", b"x" * (50 * 1024 * 1024))
    refused(archive_app, url, "more than the limit")


def test_urls_to_internal_addresses_are_refused_also_behind_a_redirect(
    make_app, archive_app, feed_server
):
    feed_server.serve("/feed.xml", rss(weekly(1)))
    port = feed_server.server.server_address[1]
    to_localhost = feed_server.serve(
        "/moved", status=302, headers={"Location": f"http://localhost:{port}/feed.xml"}
    )
    refused(archive_app, to_localhost, "localhost is an internal address")
    to_metadata = feed_server.serve(
        "/meta", status=301, headers={"Location": "http://169.254.169.254/latest/meta-data/"}
    )
    refused(archive_app, to_metadata, "internal address (169.254.169.254)")
    refused(archive_app, "http://10.1.2.3/feed.xml", "10.1.2.3 is an internal address")
    looping = feed_server.serve("/loop", status=302, headers={"Location": "/loop"})
    refused(archive_app, looping, "more than 5 redirects")
    refused(archive_app, feed_server.url("/missing"), "HTTP 404")
    # Without FEED_ALLOW_HOSTS, 127.0.0.1 itself is internal.
    strict = make_app()
    with strict.app_context():
        refused(strict, feed_server.url("/feed.xml"), "127.0.0.1 is an internal address")


def test_items_without_ids_or_dates_are_skipped_with_the_reason(archive_app, tmp_path):
    feed = tmp_path / "feed.xml"
    feed.write_bytes(
        b'<?xml version="1.0"?><rss version="2.0"><channel><title>t</title>'
        b"<item><title>Good</title><guid>g1</guid><pubDate>Tue, 02 Apr 2019 10:00:00 GMT</pubDate>"
        b"<description>fine</description></item>"
        b"<item><title>No id</title><pubDate>Tue, 02 Apr 2019 10:00:00 GMT</pubDate>"
        b"<description>x</description></item>"
        b"<item><title>No date</title><guid>g3</guid><description>x</description></item>"
        b"<item><title>Empty</title><guid>g4</guid><pubDate>Tue, 02 Apr 2019 10:00:00 GMT"
        b"</pubDate></item>"
        b"</channel></rss>"
    )
    code, lines, _ = run_import(archive_app, feed)
    assert code == 0 and counts(lines) == (1, 0, 3)
    assert lines[3:] == [
        "skipped\tNo id\tno id and no link",
        "skipped\tNo date\tno date",
        "skipped\tEmpty\tempty body",
    ]


def test_scripts_and_handlers_in_posts_never_reach_the_archive(archive_app, client, tmp_path):
    post = Post(1)
    post.body = (
        "<p>Real text</p><script>alert('x')</script><iframe src='https://evil.example'></iframe>"
        '<img src="https://example.org/a.png" onerror="alert(1)" alt="pic">'
        '<p><a href="javascript:alert(2)">click</a> <a href="https://ok.example/">ok</a></p>'
        "<style>body{display:none}</style>"
    )
    export = tmp_path / "medium.zip"
    export.write_bytes(medium_export([post]))
    assert counts(run_import(archive_app, export)[1]) == (1, 0, 0)
    issue = db.session.scalars(sa.select(Issue)).one()
    for bad in ("alert", "iframe", "onerror", "javascript", "display:none", "<script"):
        assert bad not in issue.body_md
    assert "![pic](https://example.org/a.png)" in issue.body_md
    assert "[ok](https://ok.example/)" in issue.body_md
    page = client.get(f"/archive/{issue.slug}").get_data(as_text=True)
    assert "alert(" not in page and "onerror" not in page and "Real text" in page


def _zip(members: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return buffer.getvalue()


@pytest.mark.parametrize("evil", ["../evil.md", "/etc/evil.md", "posts/../../evil.md", "C:/x.md"])
def test_a_zip_with_paths_outside_its_folder_is_refused_whole(archive_app, tmp_path, evil):
    good = markdown_post(Post(1)).encode()
    path = tmp_path / "posts.zip"
    path.write_bytes(_zip({"posts/good.md": good, evil: good}))
    refused(archive_app, path, "outside its folder")


def test_a_zip_bomb_is_refused_before_it_inflates(archive_app, tmp_path):
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("posts/ok.md", markdown_post(Post(1)))
        with zf.open("posts/bomb.md", "w") as member:
            for _ in range(21):
                member.write(bytes(1024 * 1024))
    assert len(buffer.getvalue()) < 100_000
    path = tmp_path / "bomb.zip"
    path.write_bytes(buffer.getvalue())
    refused(archive_app, path, "refused as a ZIP bomb would be")


def test_a_source_that_breaks_half_way_imports_nothing(archive_app, tmp_path):
    members = {f"posts/{n:03d}.md": markdown_post(Post(n)).encode() for n in range(1, 21)}
    data = bytearray(_zip(members))
    # Spoil the last member's compressed bytes: the first 19 read fine, the 20th cannot.
    last = zipfile.ZipFile(io.BytesIO(bytes(data))).getinfo("posts/020.md")
    start = last.header_offset + 30 + len(last.filename) + len(last.extra) + 5
    data[start : start + 8] = b"\xff" * 8
    path = tmp_path / "broken.zip"
    path.write_bytes(bytes(data))
    refused(archive_app, path, "posts/020.md could not be unpacked")


def test_a_missing_source_and_an_empty_folder_are_one_line_errors(archive_app, tmp_path):
    refused(archive_app, tmp_path / "nope.xml", "does not exist")
    empty = tmp_path / "empty"
    empty.mkdir()
    refused(archive_app, empty, "holds no posts")
    notzip = tmp_path / "x.zip"
    notzip.write_bytes(b"PK\x03\x04 not really")
    refused(archive_app, notzip, "is not a readable ZIP file")
