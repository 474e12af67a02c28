"""The editor's back catalogue page: upload an export or give a feed's URL, read the report."""

from __future__ import annotations

import io
import re
from datetime import timedelta

import sqlalchemy as sa
from flask import current_app

from newsletter.archive.tables import CatalogueImport
from newsletter.extensions import db, get_redis
from newsletter.models import Issue, IssueStatus, utcnow
from newsletter.tasks.catalogue import reconcile
from newsletter.tasks.worker import build_worker
from tests.archive.exports import medium_export, rss, substack_export, weekly
from tests.helpers import csrf_from
from tests.helpers.editors import editor_client


def _post(client, **data):
    """Start an import as the page does; a worker runs it; return the import's page."""
    token = csrf_from(client.get("/editor/archive").get_data(as_text=True))
    response = client.post(
        "/editor/archive",
        data={"csrf_token": token, **data},
        content_type="multipart/form-data",
    )
    if response.status_code != 303:
        return response  # refused at once: the form again, with the reason
    where = response.headers["Location"]
    waiting = client.get(where).get_data(as_text=True)
    assert "Waiting for a worker" in waiting and 'http-equiv="refresh"' in waiting
    _drain()
    done = client.get(where)
    assert 'http-equiv="refresh"' not in done.get_data(as_text=True)
    return done


def _drain() -> None:
    db.session.commit()
    build_worker(current_app._get_current_object()).work(burst=True, with_scheduler=False)
    db.session.expire_all()


def _report(html: str) -> tuple[int, int, int]:
    found = [
        int(re.search(rf'id="{key}"><strong>(\d+)</strong>', html).group(1))
        for key in ("added", "already", "skipped")
    ]
    return found[0], found[1], found[2]


def test_an_anonymous_visitor_is_sent_to_the_login(archive_app):
    client = archive_app.test_client()
    response = client.get("/editor/archive")
    assert response.status_code == 302 and "/editor/login" in response.headers["Location"]
    assert client.post("/editor/archive", data={"url": "http://x"}).status_code in (302, 400)


def test_uploading_medium_then_substack_exports_reports_and_archives(archive_app):
    client = editor_client(archive_app)
    page = client.get("/editor/archive").get_data(as_text=True)
    assert "0 archived tips so far" in page and "Set <code>FEED_URL</code>" in page
    upload = (io.BytesIO(medium_export(weekly(3), drafts=1)), "medium-export.zip")
    response = _post(client, file=upload)
    html = response.get_data(as_text=True)
    assert response.status_code == 200, html
    assert _report(html) == (3, 0, 1)
    assert "a draft: never published" in html
    assert "3 archived tips so far" in html
    again = _post(client, file=(io.BytesIO(medium_export(weekly(3))), "medium-export.zip"))
    assert _report(again.get_data(as_text=True)) == (0, 3, 0)
    other = _post(client, file=(io.BytesIO(substack_export(weekly(2))), "substack.zip"))
    assert _report(other.get_data(as_text=True)) == (2, 0, 0)
    statuses = set(db.session.scalars(sa.select(Issue.status)))
    assert statuses == {IssueStatus.ARCHIVED}
    # The issue page says where an archived tip came from, with a link to the post.
    issue = db.session.scalars(sa.select(Issue).order_by(Issue.id)).first()
    shown = client.get(f"/editor/issues/{issue.id}").get_data(as_text=True)
    assert 'id="issue-source"' in shown and weekly(1)[0].link in shown


def test_a_feed_url_from_a_real_server(archive_app, feed_server):
    client = editor_client(archive_app)
    url = feed_server.serve("/feed.xml", rss(weekly(4)))
    response = _post(client, url=url)
    assert _report(response.get_data(as_text=True)) == (4, 0, 0)


def test_bad_uploads_and_urls_get_the_page_with_the_reason_and_change_nothing(
    archive_app, feed_server
):
    client = editor_client(archive_app)
    for data, expected in (
        ({}, "Choose a file or enter a feed"),
        ({"url": "ftp://example.org/feed"}, "Enter an http:// or https:// URL."),
        ({"url": "http://10.9.8.7/latest"}, "allow an intranet host with FEED_ALLOW_HOSTS."),
        ({"file": (io.BytesIO(b"not a feed"), "feed.xml")}, "is not an RSS or Atom feed"),
        ({"file": (io.BytesIO(b"PK\x03\x04junk"), "x.zip")}, "is not a readable ZIP file"),
        ({"url": feed_server.serve("/gone", status=500)}, "HTTP 500"),
    ):
        response = _post(client, **data)
        html = response.get_data(as_text=True)
        assert response.status_code < 500, (data, response.status_code)
        assert expected in html, (expected, html[:2000])
        assert 'id="import-error"' in html
    assert db.session.scalar(sa.select(sa.func.count()).select_from(Issue)) == 0


def test_an_archived_tip_can_be_corrected_and_keeps_its_address(archive_app, inbox):
    client = editor_client(archive_app)
    _post(client, file=(io.BytesIO(medium_export(weekly(1))), "medium-export.zip"))
    issue = db.session.scalars(sa.select(Issue)).one()
    slug = issue.slug
    page = client.get(f"/editor/issues/{issue.id}").get_data(as_text=True)
    assert 'name="body_md"' in page and "Send now" not in page
    token = csrf_from(page)
    saved = client.post(
        f"/editor/issues/{issue.id}",
        data={"csrf_token": token, "subject": "Tip 1, corrected", "body_md": "Fixed **body**."},
    )
    assert saved.status_code == 302
    db.session.expire_all()
    issue = db.session.get(Issue, issue.id)
    assert issue.status is IssueStatus.ARCHIVED and issue.slug == slug
    public = archive_app.test_client().get(f"/archive/{slug}").get_data(as_text=True)
    assert "Tip 1, corrected" in public and "<strong>body</strong>" in public
    assert inbox.messages == []


def test_the_status_endpoint_and_an_import_whose_job_redis_lost(archive_app, feed_server):
    client = editor_client(archive_app)
    assert client.get("/editor/archive/imports/999999").status_code == 404
    assert client.get("/editor/archive/imports/999999.json").status_code == 404
    url = feed_server.serve("/lost.xml", rss(weekly(2)))
    token = csrf_from(client.get("/editor/archive").get_data(as_text=True))
    response = client.post("/editor/archive", data={"csrf_token": token, "url": url})
    assert response.status_code == 303
    where = response.headers["Location"]
    assert client.get(where + ".json").get_json()["status"] == "queued"
    # Redis loses the job: nothing runs it, until the tick's rebuild queues it again.
    get_redis().flushdb()
    _drain()
    assert client.get(where + ".json").get_json()["status"] == "queued"
    db.session.execute(sa.update(CatalogueImport).values(created_at=utcnow() - timedelta(hours=1)))
    db.session.commit()
    reconcile()
    _drain()
    state = client.get(where + ".json").get_json()
    assert (state["status"], state["added"], state["already"]) == ("done", 2, 0)
    assert "<strong>2</strong> added" in client.get(where).get_data(as_text=True)
    stored = db.session.scalars(sa.select(CatalogueImport.data)).one()
    assert stored is None  # nothing of the source is kept once it ran
    anonymous = archive_app.test_client()
    assert anonymous.get(where + ".json").status_code in (302, 401)
