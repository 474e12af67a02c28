"""The public archive of sent and archived issues (the back catalogue), and its Atom feed."""

from __future__ import annotations

from datetime import datetime
from typing import Any
from urllib.parse import urlsplit
from xml.etree import ElementTree as ET

from flask import Blueprint, Flask, Response, abort, render_template, request
from flask_babel import gettext as _
from markupsafe import Markup

from newsletter.archive import listing
from newsletter.extensions import db, settings
from newsletter.issues.corrections import last_corrected
from newsletter.mail.body import markdown_to_html
from newsletter.mail.merge import public_line, with_fallbacks
from newsletter.models import Issue, utcnow
from newsletter.services import branded_settings
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


@bp.app_template_filter("public_subject")
def _public_subject(subject: str) -> str:
    # A merge field in a subject is for each reader's copy; pages show everyone the fallback.
    return public_line(subject)


def _page_number() -> int:
    page = request.args.get("page", 1, type=int)
    if page < 1 or page > 100_000:
        abort(404, description=_("There is no such page of the archive."))
    return page


@bp.get("/archive")
def index() -> Any:
    """List the tips, newest first, a page at a time: searched (?q=) or by tag (?tag=)."""
    page = _page_number()
    query = request.args.get("q", "")[: listing.MAX_QUERY].strip()
    tag = listing.clean_tag(request.args.get("tag", ""))
    tips, more, total = listing.list_tips(
        db.session(),
        settings().base_url,
        page=page,
        per_page=PER_PAGE,
        words=listing.search_words(query),
        tag=tag,
    )
    if page > 1 and not tips:
        abort(404, description=_("There is no such page of the archive."))
    return render_template(
        "public/archive.html",
        tips=tips,
        page=page,
        more=more,
        total=total,
        query=query,
        tag=tag,
        tags=[] if query or tag else listing.top_tags(db.session()),
        filters={k: v for k, v in (("q", query), ("tag", tag)) if v},
    )


@bp.get("/archive/<key>")
def show(key: str) -> Any:
    """Show one tip by its slug (or its id): the body and a way to subscribe, nothing personal."""
    if len(key) > 200:
        abort(404)
    found = listing.find_tip(db.session(), row_id(key), key)
    if found is None:
        abort(404, description=_("There is no sent issue at this address."))
    issue, published, source = found
    # Markup is safe here: markdown_to_html runs the result through nh3.
    body = Markup(markdown_to_html(with_fallbacks(issue.body_md), settings().base_url))
    return render_template(
        "public/archive_issue.html",
        issue=issue,
        body=body,
        published=published,
        canonical=(source.url if source is not None and source.url else None),
        tags=listing.tags_of(db.session(), [issue.id])[issue.id],
        updated=last_corrected(db.session(), [issue.id]).get(issue.id),
    )


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
    corrected: dict[int, datetime] | None = None,
) -> bytes:
    """Return an Atom document for ``issues`` (newest first), every URL absolute.

    ``corrected`` says when a sent issue was last corrected: its entry's ``updated``.
    """
    corrected = corrected or {}

    def changed(issue: Issue, published: datetime) -> datetime:
        return max(published, corrected.get(issue.id, published))

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
    sub(feed, "updated", _iso(max((changed(i, p) for i, p in issues), default=utcnow())))
    sub(feed, "link", rel="self", type="application/atom+xml", href=f"{base_url}/feed.xml")
    sub(feed, "link", rel="alternate", type="text/html", href=f"{base_url}/archive")
    author = sub(feed, "author")
    sub(author, "name", title)
    for issue, published in issues:
        entry = sub(feed, "entry")
        sub(entry, "id", _tag(base_url, issue))
        sub(entry, "title", public_line(issue.subject))
        sub(entry, "updated", _iso(changed(issue, published)))
        sub(entry, "published", _iso(published))
        href = f"{base_url}/archive/{issue.slug}"
        sub(entry, "link", rel="alternate", type="text/html", href=href)
        sub(
            entry, "content", markdown_to_html(with_fallbacks(issue.body_md), base_url), type="html"
        )
    document: bytes = ET.tostring(feed, encoding="utf-8", xml_declaration=True)
    return document


@bp.get("/feed.xml")
def feed() -> Response:
    """Serve the newest sent issues as an Atom feed."""
    found = branded_settings()
    issues = [(i, p) for i, p in db.session.execute(listing.in_archive(Issue).limit(FEED_ENTRIES))]
    name = found.newsletter_name
    body = build_feed(
        found.base_url,
        name,
        issues,
        corrected=last_corrected(db.session(), [i.id for i, _p in issues]),
        language=found.language,
        subtitle=_("Every tip of %(name)s, newest first.", name=name),
    )
    return Response(body, content_type="application/atom+xml; charset=utf-8")
