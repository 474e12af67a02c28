"""The editor's CSV import: upload a file, watch a worker import it, read the report."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from flask import (
    Blueprint,
    Flask,
    abort,
    jsonify,
    redirect,
    render_template,
    request,
    url_for,
)

from newsletter.auth.sessions import login_required
from newsletter.extensions import db
from newsletter.models import (
    ImportJob,
)
from newsletter.subscribers.imports import (
    ImportFormatError,
    import_report,
    read_csv_rows,
)
from newsletter.tasks.jobs import run_import
from newsletter.tasks.queues import enqueue

bp = Blueprint("imports", __name__, url_prefix="/editor")

MAX_UPLOAD = 20 * 1024 * 1024


def register(app: Flask) -> None:
    """Attach these pages to the app."""
    app.register_blueprint(bp)


@bp.route("/import", methods=["GET", "POST"])
@login_required
def import_page() -> Any:
    """Upload a CSV; a worker imports it while the next page shows the progress."""
    recent = db.session.scalars(sa.select(ImportJob).order_by(ImportJob.id.desc()).limit(10))
    if request.method == "GET":
        return render_template("editor/import.html", recent=list(recent), error=None)

    def refuse(message: str, code: int = 400) -> Any:
        return render_template("editor/import.html", recent=list(recent), error=message), code

    if request.content_length and request.content_length > MAX_UPLOAD + 64 * 1024:
        return refuse("That file is too large: the limit is 20 MB per import.", 413)
    upload = request.files.get("file")
    if upload is None or not upload.filename:
        return refuse("Choose a CSV file to import.")
    choice = request.form.get("mode")
    if choice not in ("confirmed", "confirm"):
        return refuse(
            "Choose whether these people already opted in or should each get a confirmation."
        )
    data = upload.stream.read(MAX_UPLOAD + 1)
    if len(data) > MAX_UPLOAD:
        return refuse("That file is too large: the limit is 20 MB per import.", 413)
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        return refuse("That file is not UTF-8 text; save it as CSV (UTF-8) and try again.")
    if "\0" in text:
        return refuse("That file is not a CSV text file.")
    try:
        next(read_csv_rows(text), None)
    except ImportFormatError as exc:
        return refuse(str(exc))
    except Exception:
        return refuse("That file could not be read as CSV.")
    job = ImportJob(
        filename=(upload.filename or "upload.csv")[:200],
        csv_text=text,
        confirmed=choice == "confirmed",
    )
    db.session.add(job)
    db.session.commit()
    enqueue(run_import, job.id, job_timeout=3600)
    return redirect(url_for("imports.import_status", import_id=job.id))


def _import_or_404(import_id: int) -> ImportJob:
    job = db.session.get(ImportJob, import_id)
    if job is None:
        abort(404, "No import with that number.")
    return job


@bp.get("/import/<int:import_id>")
@login_required
def import_status(import_id: int) -> Any:
    """Show an import's progress bar and, once done, its report."""
    job = _import_or_404(import_id)
    return render_template("editor/import_status.html", job=job, report=import_report(job))


@bp.get("/import/<int:import_id>.json")
@login_required
def import_status_json(import_id: int) -> Any:
    """Return an import's progress for the page's poller."""
    return jsonify(import_report(_import_or_404(import_id)))
