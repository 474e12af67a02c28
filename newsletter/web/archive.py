"""The public archive of sent and archived issues (the back catalogue), and its Atom feed."""

from __future__ import annotations

from datetime import datetime
from typing import Any
from urllib.parse import urlsplit
from xml.etree import ElementTree as ET

import sqlalchemy as sa
from flask import Blueprint, Flask, Response, abort, render_template, request
from flask_babel import gettext as _
from markupsafe import Markup

from newsletter.archive.tables import IssueSource
from newsletter.extensions import db, settings
from newsletter.mail.body import markdown_to_html
from newsletter.models import ISSUE_IN_ARCHIVE, Issue, utcnow
from newsletter.web import row_id

bp = Blueprint("archive", __name__)

PER_PAGE = 20
FEED_ENTRIES = 20
# Public once its send started: a reader's "view in the browser" link must work while the rest
# of the list is still being sent.
ATOM = "http://www.w3.org/2005/Atom"
XML_LANG = "{http://www.w3.org/XML/1998/namespace}lang"


def register(app: Flask) -> None:
    """Attach the archive pages to ``app``."""
    app.register_blueprint(bp)


def _published_at() -> Any:
    # A back-catalogue post keeps the date it was first published on the blog.
    return sa.func.coalesce(
        Issue.sent_at, Issue.queued_at, IssueSource.published_at, Issue.created_at
    )


def _published() -> sa.Select[Issue, datetime]:
    return (
        sa.select(Issue, _published_at())
        .outerjoin(IssueSource, IssueSource.issue_id == Issue.id)
        .where(Issue.status.in_(ISSUE_IN_ARCHIVE))
        .order_by(_published_at().desc(), Issue.id.desc())
    )


@bp.get("/archive")
def index() -> Any:
    """List sent issues, newest first, a page at a time."""
    page = request.args.get("page", 1, type=int)
    if page < 1 or page > 100_000:
        abort(404, description=_("There is no such page of the archive."))
    rows = list(db.session.execute(_published().limit(PER_PAGE + 1).offset((page - 1) * PER_PAGE)))
    if page > 1 and not rows:
        abort(404, description=_("There is no such page of the archive."))
    return render_template(
        "public/archive.html",
        tips=[(issue, published) for issue, published in rows[:PER_PAGE]],
        page=page,
        more=len(rows) > PER_PAGE,
    )


@bp.get("/archive/<key>")
def show(key: str) -> Any:
    """Show one sent issue by its slug (or its id): the body only, nothing personal."""
    found = None
    if len(key) > 200:
        abort(404)
    issue_id = row_id(key)
    if issue_id is not None:
        found = db.session.execute(_published().where(Issue.id == issue_id)).first()
    if found is None:
        found = db.session.execute(_published().where(Issue.slug == key)).first()
    if found is None:
        abort(404, description=_("There is no sent issue at this address."))
    issue, published = found
    # Markup is safe here: markdown_to_html runs the result through nh3.
    body = Markup(markdown_to_html(issue.body_md, settings().base_url))
    return render_template("public/archive_issue.html", issue=issue, body=body, published=published)


def _iso(moment: datetime) -> str:
    return moment.isoformat(timespec="seconds").replace("+00:00", "Z")


def _tag(base_url: str, issue: Issue) -> str:
    # A tag URI (RFC 4151) stays the same when a subject, and so the slug, is edited.
    host = urlsplit(base_url).hostname or "localhost"
    return f"tag:{host},{issue.created_at:%Y-%m-%d}:issue:{issue.id}"


def build_feed(
    base_url: str,
    title: str,
    issues: list[tuple[Issue, datetime]],
    *,
    language: str = "en",
    subtitle: str = "",
) -> bytes:
    """Return an Atom document for ``issues`` (newest first), every URL absolute."""
    ET.register_namespace("", ATOM)

    def sub(parent: ET.Element, name: str, text: str | None = None, **attrs: str) -> ET.Element:
        el = ET.SubElement(parent, f"{{{ATOM}}}{name}", attrs)
        if text is not None:
            el.text = text
        return el

    feed = ET.Element(f"{{{ATOM}}}feed", {XML_LANG: language})
    sub(feed, "id", f"{base_url}/feed.xml")
    sub(feed, "title", title)
    if subtitle:
        sub(feed, "subtitle", subtitle)
    sub(feed, "updated", _iso(issues[0][1] if issues else utcnow()))
    sub(feed, "link", rel="self", type="application/atom+xml", href=f"{base_url}/feed.xml")
    sub(feed, "link", rel="alternate", type="text/html", href=f"{base_url}/archive")
    author = sub(feed, "author")
    sub(author, "name", title)
    for issue, published in issues:
        entry = sub(feed, "entry")
        sub(entry, "id", _tag(base_url, issue))
        sub(entry, "title", issue.subject)
        sub(entry, "updated", _iso(published))
        sub(entry, "published", _iso(published))
        href = f"{base_url}/archive/{issue.slug}"
        sub(entry, "link", rel="alternate", type="text/html", href=href)
        sub(entry, "content", markdown_to_html(issue.body_md, base_url), type="html")
    document: bytes = ET.tostring(feed, encoding="utf-8", xml_declaration=True)
    return document


@bp.get("/feed.xml")
def feed() -> Response:
    """Serve the newest sent issues as an Atom feed."""
    found = settings()
    issues = [(i, p) for i, p in db.session.execute(_published().limit(FEED_ENTRIES))]
    name = found.newsletter_name
    body = build_feed(
        found.base_url,
        name,
        issues,
        language=found.language,
        subtitle=_("Every tip of %(name)s, newest first.", name=name),
    )
    return Response(body, content_type="application/atom+xml; charset=utf-8")
