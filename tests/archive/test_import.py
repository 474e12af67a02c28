"""`newsletter issues import SOURCE`: feeds, Medium, Substack and Markdown become the archive."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from datetime import UTC, datetime

import sqlalchemy as sa

from newsletter.archive.tables import ArchiveTag, IssueSource
from newsletter.extensions import db
from newsletter.models import Delivery, Issue, IssueStatus
from tests.archive.exports import (
    Post,
    atom,
    markdown_folder,
    medium_export,
    rss,
    substack_export,
    weekly,
    zip_folder,
)

ATOM = "{http://www.w3.org/2005/Atom}"


def run_import(app, source, **env) -> tuple[int, list[str], str]:
    result = app.test_cli_runner().invoke(args=["issues", "import", str(source)], env=env)
    return result.exit_code, result.stdout.splitlines(), result.stderr


def counts(lines: list[str]) -> tuple[int, int, int]:
    found = dict(re.match(r"(added|already there|skipped) (\d+)$", x).groups() for x in lines[:3])
    return int(found["added"]), int(found["already there"]), int(found["skipped"])


def archived() -> list[Issue]:
    db.session.expire_all()
    return list(
        db.session.scalars(
            sa.select(Issue)
            .join(IssueSource, IssueSource.issue_id == Issue.id)
            .order_by(IssueSource.published_at)
        )
    )


def test_a_feed_file_becomes_the_archive_with_dates_titles_and_clean_bodies(
    archive_app, client, tmp_path, inbox
):
    posts = weekly(3)
    posts[1].tags = ("shell", "Git")
    posts[2].body = '<p>Safe <script>alert(1)</script><a href="javascript:evil()">x</a></p>'
    feed = tmp_path / "feed.xml"
    feed.write_bytes(rss(posts, medium_furniture=True))
    code, lines, _ = run_import(archive_app, feed)
    assert code == 0, lines
    assert counts(lines) == (3, 0, 0)
    issues = archived()
    assert [i.subject for i in issues] == [p.title for p in posts]
    assert {i.status for i in issues} == {IssueStatus.ARCHIVED}
    first = issues[0]
    # Medium's furniture is gone: the title again, the tracking pixel, "originally published".
    assert first.body_md.startswith("Tip number 1. Run `tool --1`")
    assert "_/stat" not in first.body_md and "originally published" not in first.body_md
    assert "- first step 1" in first.body_md
    assert "script" not in issues[2].body_md and "javascript" not in issues[2].body_md
    source = db.session.get(IssueSource, first.id)
    assert source.published_at == posts[0].published
    assert source.url == posts[0].link + "?source=rss----tips---4"
    tags = db.session.scalars(sa.select(ArchiveTag.name).where(ArchiveTag.issue_id == issues[1].id))
    assert sorted(tags) == ["git", "shell"]
    # Public in the archive and the feed, under their original dates, and never mailed.
    page = client.get("/archive").get_data(as_text=True)
    assert page.index(posts[2].title) < page.index(posts[0].title)
    assert 'datetime="2016-01-04T09:00:00+00:00"' in page
    shown = client.get(f"/archive/{first.slug}")
    assert shown.status_code == 200 and "tool --1" in shown.get_data(as_text=True)
    entries = ET.fromstring(client.get("/feed.xml").data).findall(f"{ATOM}entry")
    assert [e.find(f"{ATOM}title").text for e in entries] == [p.title for p in reversed(posts)]
    assert entries[-1].find(f"{ATOM}published").text == "2016-01-04T09:00:00Z"
    assert db.session.scalar(sa.select(sa.func.count()).select_from(Delivery)) == 0
    assert inbox.messages == []


def test_importing_again_or_an_overlapping_later_feed_adds_nothing_twice(archive_app, tmp_path):
    feed = tmp_path / "feed.xml"
    feed.write_bytes(rss(weekly(5)))
    assert counts(run_import(archive_app, feed)[1]) == (5, 0, 0)
    assert counts(run_import(archive_app, feed)[1]) == (0, 5, 0)
    later = tmp_path / "later.xml"
    later.write_bytes(rss(weekly(8)[3:]))  # posts 4..8: two known, three new
    assert counts(run_import(archive_app, later)[1]) == (3, 2, 0)
    assert len(archived()) == 8


def test_a_feed_by_url_from_a_real_server_and_an_atom_feed(archive_app, feed_server):
    kind = {"Content-Type": "application/rss+xml"}
    url = feed_server.serve("/feed", rss(weekly(2)), headers=kind)
    code, lines, _ = run_import(archive_app, url)
    assert code == 0 and counts(lines) == (2, 0, 0)
    moved = feed_server.serve("/old-atom", status=301, headers={"Location": "/atom.xml"})
    feed_server.serve("/atom.xml", atom([Post(7, title="Atom tip")]))
    code, lines, _ = run_import(archive_app, moved)
    assert code == 0 and counts(lines) == (1, 0, 0)
    issue = archived()[-1]
    assert issue.subject == "Atom tip" and issue.slug == "tip-7-use-the-tool"
    assert (
        db.session.get(IssueSource, issue.id).url == "https://blog.example.org/tip-7-use-the-tool/"
    )


def test_medium_export_posts_without_furniture_drafts_skipped_and_pages_ignored(
    archive_app, tmp_path
):
    posts = weekly(4)
    export = tmp_path / "medium-export.zip"
    export.write_bytes(medium_export(posts, drafts=2))
    code, lines, _ = run_import(archive_app, export)
    assert code == 0, lines
    assert counts(lines) == (4, 0, 2)
    assert all("a draft: never published" in line for line in lines[3:])
    issue = archived()[0]
    assert issue.subject == posts[0].title
    assert issue.slug == posts[0].slug  # Medium's id suffix is not part of the slug
    body = issue.body_md
    assert body.startswith("Tip number 1."), body
    for furniture in ("Ada Author", "Follow", "min read", "subscribe", "A tip a week"):
        assert furniture not in body
    source = db.session.get(IssueSource, issue.id)
    assert source.origin == "medium" and source.url == posts[0].link
    assert source.published_at == posts[0].published
    # The same posts through Medium's feed later: found by their canonical links.
    feed = tmp_path / "feed.xml"
    feed.write_bytes(rss(weekly(5)))
    assert counts(run_import(archive_app, feed)[1]) == (1, 4, 0)


def test_substack_export_reads_posts_csv_and_the_body_files(archive_app, tmp_path):
    posts = weekly(3)
    export = tmp_path / "substack.zip"
    export.write_bytes(substack_export(posts, drafts=1))
    code, lines, _ = run_import(archive_app, export)
    assert code == 0 and counts(lines) == (3, 0, 1)
    assert "not published" in lines[3]
    issue = archived()[1]
    assert issue.subject == posts[1].title and issue.slug == posts[1].slug
    assert issue.body_md.startswith("*Subtitle of 2*") and "tool --2" in issue.body_md
    assert db.session.get(IssueSource, issue.id).published_at == posts[1].published
    assert counts(run_import(archive_app, export)[1]) == (0, 3, 1)


def test_markdown_folder_then_the_same_folder_zipped_adds_nothing_twice(archive_app, tmp_path):
    posts = weekly(3)
    posts[0].tags = ("cli", "productivity")
    folder = markdown_folder(tmp_path / "posts", posts)
    (folder / "broken.md").write_text("no front matter here", encoding="utf-8")
    (folder / "undated.md").write_text("---\ntitle: No date\n---\nbody", encoding="utf-8")
    (folder / "bomb.md").write_text(
        "---\na: &a [x, x, x, x, x, x, x, x]\nb: &b [*a, *a, *a, *a, *a, *a, *a]\n"
        "title: *b\ndate: 2020-01-01\n---\nbody",
        encoding="utf-8",
    )
    code, lines, _ = run_import(archive_app, folder)
    assert code == 0 and counts(lines) == (3, 0, 3)
    reasons = "\n".join(lines[3:])
    assert "broken.md\tno front matter" in reasons
    assert "undated.md\tno date" in reasons
    assert "bomb.md\tfront matter is not valid YAML" in reasons
    issue = archived()[0]
    assert issue.slug == posts[0].slug and issue.body_md.startswith("Tip number 1.")
    assert db.session.get(IssueSource, issue.id).published_at == datetime(2016, 1, 4, tzinfo=UTC)
    assert sorted(db.session.scalars(sa.select(ArchiveTag.name))) == ["cli", "productivity"]
    zipped = tmp_path / "posts.zip"
    zipped.write_bytes(zip_folder(folder))
    assert counts(run_import(archive_app, zipped)[1]) == (0, 3, 3)


def test_a_long_import_draws_its_progress_on_stderr_and_reports_on_stdout(archive_app, tmp_path):
    export = tmp_path / "medium.zip"
    export.write_bytes(medium_export(weekly(120)))
    # As on a terminal (rich reads these): the bar is drawn on stderr, never into the report.
    code, lines, stderr = run_import(archive_app, export, TTY_COMPATIBLE="1", TTY_INTERACTIVE="1")
    assert code == 0 and lines == ["added 120", "already there 0", "skipped 0"]
    assert "reading" in stderr and "saving" in stderr and "120/120" in stderr
    assert len(archived()) == 120
    slugs = {i.slug for i in archived()}
    assert len(slugs) == 120


def test_slugs_never_collide_with_existing_issues_or_look_like_ids(archive_app, tmp_path):
    folder = tmp_path / "md"
    folder.mkdir()
    for n, slug in enumerate(("same", "same", "2024"), 1):
        (folder / f"{n}.md").write_text(
            f"---\ntitle: Post {n}\ndate: 2020-01-0{n}\nslug: '{slug}'\n---\nbody {n}\n",
            encoding="utf-8",
        )
    assert counts(run_import(archive_app, folder)[1]) == (3, 0, 0)
    assert [i.slug for i in archived()] == ["same", "same-2", "2024-2"]


def test_an_archived_issue_is_never_sent_nor_counted_as_a_send(
    archive_app, client, tmp_path, make_subscriber, run_jobs, inbox
):
    make_subscriber("reader@example.com")
    feed = tmp_path / "feed.xml"
    feed.write_bytes(rss(weekly(1)))
    run_import(archive_app, feed)
    (issue,) = archived()
    runner = archive_app.test_cli_runner()
    sent = runner.invoke(args=["issues", "send", str(issue.id)])
    assert "nothing new was queued" in sent.output
    run_jobs()
    assert inbox.messages == []
    db.session.expire_all()
    assert db.session.get(Issue, issue.id).status is IssueStatus.ARCHIVED
    status = runner.invoke(args=["issues", "status", str(issue.id)])
    assert status.stdout.splitlines()[:3] == ["state archived", "queued 0", "sent 0"]
