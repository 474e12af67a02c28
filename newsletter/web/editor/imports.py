"""The editor's CSV import: upload a file, watch a worker import it, read the report."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import sqlalchemy as sa
from flask import (
    Blueprint,
    Flask,
    abort,
    flash,
    jsonify,
    redirect,
    render_template,
    request,
    url_for,
)
from werkzeug.exceptions import RequestEntityTooLarge

from newsletter.auth.sessions import current_editor, login_required
from newsletter.errors import NewsletterError
from newsletter.extensions import db, settings
from newsletter.models import ImportJob, ImportStatus, rowcount, utcnow
from newsletter.subscribers.formats import decode, read
from newsletter.subscribers.import_preview import preview_import
from newsletter.subscribers.imports import import_report
from newsletter.subscribers.tags import parse_tags
from newsletter.tasks.mail import queue_import

NO_IMPORT = "No import with that number."

bp = Blueprint("imports", __name__, url_prefix="/editor")

# What the import form holds besides the file: boundaries, part headers, the CSRF token and
# the mode. A few hundred bytes; generous, so that a file of exactly the limit goes in.
FORM_OVERHEAD = 64 * 1024
# Werkzeug's multipart reader checks max_form_memory_size against each 64 KiB chunk it reads
# plus what it holds back (a part's headers, the start of a possible boundary), file parts
# included: at the app's 64 KiB a CSV longer than a chunk or two is refused. This form's text
# fields are tiny, so a looser bound here costs nothing.
UPLOAD_FORM_MEMORY = 2 * 64 * 1024


def register(app: Flask) -> None:
    """Attach these pages to the app."""
    app.register_blueprint(bp)


def upload_limit() -> int:
    """Return the largest CSV file one import may upload, in bytes (IMPORT_MAX_BYTES)."""
    return settings().import_max_bytes


def size_text(n: int) -> str:
    """Say a number of bytes as people do: 20 MB, 1.5 MB, 512 KB, 900 bytes."""
    for unit, size in (("MB", 1024 * 1024), ("KB", 1024)):
        if n >= size:
            return f"{n / size:.1f}".removesuffix(".0") + f" {unit}"
    return f"{n} bytes"


def _too_large() -> str:
    return f"That file is too large: the limit is {size_text(upload_limit())} per import."


@bp.url_value_preprocessor
def _admit_the_upload(endpoint: str | None, _values: dict[str, Any] | None) -> None:
    # This runs before any before_request hook, so before CSRF protection parses the form:
    # an editor's upload gets the import's limit; every other request keeps the app's.
    if endpoint == "imports.import_page" and request.method == "POST" and current_editor():
        request.max_content_length = upload_limit() + FORM_OVERHEAD
        request.max_form_memory_size = max(UPLOAD_FORM_MEMORY, settings().max_form_memory_size)


@bp.errorhandler(RequestEntityTooLarge)
def too_large(exc: RequestEntityTooLarge) -> Any:
    """Answer an upload over the limit with the import page, saying what the limit is."""
    if request.endpoint != "imports.import_page" or current_editor() is None:
        return render_template("error.html", error=exc), 413
    return _page(_too_large(), 413)


# An upload never started is dropped after this long: the file holds addresses.
PREVIEW_KEPT = timedelta(days=1)


def _page(error: str | None = None, code: int = 200) -> Any:
    db.session.execute(
        sa.delete(ImportJob).where(
            ImportJob.status == ImportStatus.PREVIEW, ImportJob.created_at < utcnow() - PREVIEW_KEPT
        )
    )
    db.session.commit()
    recent = db.session.scalars(sa.select(ImportJob).order_by(ImportJob.id.desc()).limit(10))
    page = render_template(
        "editor/import.html", recent=list(recent), error=error, limit=size_text(upload_limit())
    )
    return page, code


@bp.route("/import", methods=["GET", "POST"])
@login_required
def import_page() -> Any:
    """Upload a CSV; a worker imports it while the next page shows the progress."""
    if request.method == "GET":
        return _page()
    upload = request.files.get("file")
    if upload is None or not upload.filename:
        return _page("Choose a CSV file to import.", 400)
    choice = request.form.get("mode")
    if choice not in ("confirmed", "confirm"):
        return _page(
            "Choose whether these people already opted in or should each get a confirmation.", 400
        )
    limit = upload_limit()
    data = upload.stream.read(limit + 1)
    if len(data) > limit:
        return _page(_too_large(), 413)
    try:
        tags = parse_tags(request.form.get("tags", ""))
        text = decode(data)
        read(text)
    except NewsletterError as exc:
        return _page(exc.message, 400)
    job = ImportJob(
        filename=(upload.filename or "upload.csv")[:200],
        csv_text=text,
        confirmed=choice == "confirmed",
        tags=",".join(tags),
        status=ImportStatus.PREVIEW,
    )
    db.session.add(job)
    db.session.commit()
    return redirect(url_for("imports.import_check", import_id=job.id))


def _preview_job(import_id: int) -> ImportJob:
    job = db.get_or_404(ImportJob, import_id, description=NO_IMPORT)
    if job.status is not ImportStatus.PREVIEW:
        abort(409, "This import has already started; its progress is on its own page.")
    return job


@bp.get("/import/<id:import_id>/check")
@login_required
def import_check(import_id: int) -> Any:
    """Show what each column becomes, the first rows, and how many mails the import sends."""
    job = db.get_or_404(ImportJob, import_id, description=NO_IMPORT)
    if job.status is not ImportStatus.PREVIEW:
        return redirect(url_for("imports.import_status", import_id=job.id))
    tags = [t for t in job.tags.split(",") if t]
    preview = preview_import(db.session(), job.csv_text or "", confirmed=job.confirmed, tags=tags)
    return render_template("editor/import_check.html", job=job, preview=preview, tags=tags)


@bp.post("/import/<id:import_id>/start")
@login_required
def import_start(import_id: int) -> Any:
    """Start a checked import: a worker imports it while the next page shows the progress."""
    _preview_job(import_id)
    started = rowcount(
        db.session.execute(
            sa.update(ImportJob)
            .where(ImportJob.id == import_id, ImportJob.status == ImportStatus.PREVIEW)
            .values(status=ImportStatus.QUEUED)
        )
    )
    db.session.commit()
    if started:
        queue_import(import_id)  # Redis down: the reconciler queues it once Redis is back
    return redirect(url_for("imports.import_status", import_id=import_id))


@bp.post("/import/<id:import_id>/discard")
@login_required
def import_discard(import_id: int) -> Any:
    """Drop a checked import that was not started (and the addresses its file held)."""
    job = _preview_job(import_id)
    db.session.delete(job)
    db.session.commit()
    flash("The import was dropped; nothing was imported.")
    return redirect(url_for("imports.import_page"))


@bp.get("/import/<id:import_id>")
@login_required
def import_status(import_id: int) -> Any:
    """Show an import's progress bar and, once done, its report."""
    job = db.get_or_404(ImportJob, import_id, description=NO_IMPORT)
    return render_template("editor/import_status.html", job=job, report=import_report(job))


@bp.get("/import/<id:import_id>.json")
@login_required
def import_status_json(import_id: int) -> Any:
    """Return an import's progress for the page's poller."""
    return jsonify(import_report(db.get_or_404(ImportJob, import_id, description=NO_IMPORT)))
