"""The editor's back catalogue page: import a feed or an export, and watch the blog's feed."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import sqlalchemy as sa
from flask import Blueprint, Flask, abort, jsonify, redirect, render_template, request, url_for
from werkzeug.exceptions import RequestEntityTooLarge

from newsletter.archive import browser_imports
from newsletter.archive.entry import MAX_SOURCE_BYTES
from newsletter.archive.sources import is_url
from newsletter.archive.tables import FeedState, IssueSource
from newsletter.auth.sessions import current_editor, login_required
from newsletter.delivery import evergreen
from newsletter.extensions import db, settings
from newsletter.models import Issue, IssueStatus
from newsletter.tasks.catalogue import progress_of, queue_catalogue_import

bp = Blueprint("catalogue", __name__, url_prefix="/editor")

# The form around the file: boundaries, part headers, the CSRF token, the URL field.
FORM_OVERHEAD = 64 * 1024
UPLOAD_FORM_MEMORY = 2 * 64 * 1024
RECENT = 10


def register(app: Flask) -> None:
    """Attach this page to the app, and tell the issue page where a feed's issue came from."""
    app.register_blueprint(bp)
    app.add_template_global(issue_source, "issue_source")


def issue_source(issue_id: int) -> IssueSource | None:
    """Return where an issue came from (a blog post, an export), or None for one written here."""
    return db.session.get(IssueSource, issue_id)


@bp.url_value_preprocessor
def _admit_the_upload(endpoint: str | None, _values: dict[str, Any] | None) -> None:
    # Before CSRF protection parses the form: an editor's export may be larger than a form.
    if endpoint == "catalogue.page" and request.method == "POST" and current_editor():
        request.max_content_length = MAX_SOURCE_BYTES + 1 + FORM_OVERHEAD
        request.max_form_memory_size = max(UPLOAD_FORM_MEMORY, settings().max_form_memory_size)


def _limit() -> str:
    return f"{(MAX_SOURCE_BYTES + 1) >> 20} MB"


@bp.errorhandler(RequestEntityTooLarge)
def too_large(exc: RequestEntityTooLarge) -> Any:
    """Answer an upload over the limit with the page, saying what the limit is."""
    if request.endpoint != "catalogue.page" or current_editor() is None:
        return render_template("error.html", error=exc), 413
    return _page(error=f"That file is too large: the limit is {_limit()}.", code=413)


def _feed() -> dict[str, Any]:
    """Return what the page shows of FEED_URL: the setting and what the worker last saw."""
    feed = settings().feed
    if feed is None:
        return {"feed": None, "state": None, "made": []}
    state = db.session.scalar(sa.select(FeedState).where(FeedState.url == feed.url))
    made = db.session.execute(
        sa.select(Issue, IssueSource)
        .join(IssueSource, IssueSource.issue_id == Issue.id)
        .where(IssueSource.origin == "feed", Issue.status != IssueStatus.ARCHIVED)
        .order_by(Issue.id.desc())
        .limit(RECENT)
    ).all()
    return {"feed": feed, "state": state, "made": made}


def _archived() -> int:
    return (
        db.session.scalar(
            sa.select(sa.func.count())
            .select_from(Issue)
            .where(Issue.status == IssueStatus.ARCHIVED)
        )
        or 0
    )


def _page(error: str | None = None, code: int = 200) -> Any:
    archived = _archived()
    tips, readers = evergreen.sequence_counts(db.session())
    page = render_template(
        "editor/back_catalogue.html",
        sequence=tips,
        sequence_readers=readers,
        error=error,
        limit=_limit(),
        archived=archived or 0,
        url=request.form.get("url", "") if request.method == "POST" else "",
        **_feed(),
    )
    return page, code


@bp.route("/archive", methods=["GET", "POST"])
@login_required
def page() -> Any:
    """Hand an uploaded file or a URL to a worker to import; show the blog feed's state."""
    if request.method == "GET":
        return _page()
    upload = request.files.get("file")
    url = request.form.get("url", "").strip()
    if upload is not None and upload.filename:
        data = upload.stream.read(MAX_SOURCE_BYTES + 1)
        if len(data) > MAX_SOURCE_BYTES:
            return _page(error=f"That file is too large: the limit is {_limit()}.", code=413)
        name = Path(upload.filename).name[:200] or "upload"
        import_id = browser_imports.create(db.session(), name, data=data)
    elif url:
        if not is_url(url) or len(url) > 1000:
            return _page(error="Enter an http:// or https:// URL.", code=400)
        import_id = browser_imports.create(db.session(), url, url=url)
    else:
        return _page(error="Choose a file or enter a feed's URL.", code=400)
    db.session.commit()
    queue_catalogue_import(import_id)
    return redirect(url_for("catalogue.import_page", import_id=import_id), code=303)


@bp.get("/archive/imports/<int:import_id>")
@login_required
def import_page(import_id: int) -> Any:
    """Show an import: waiting, its progress while it runs, then its report or its error."""
    shown = browser_imports.shown(db.session(), import_id)
    if shown is None:
        abort(404)
    return render_template(
        "editor/catalogue_import.html",
        job=shown,
        progress=progress_of(import_id),
        archived=_archived(),
    )


@bp.get("/archive/imports/<int:import_id>.json")
@login_required
def import_status(import_id: int) -> Any:
    """An import's state as JSON: status, progress, and the report's counts once done."""
    shown = browser_imports.shown(db.session(), import_id)
    if shown is None:
        abort(404)
    return jsonify(
        status=shown.status,
        progress=progress_of(import_id),
        added=shown.added,
        already=shown.already,
        skipped=shown.skipped,
        error=shown.error,
    )
