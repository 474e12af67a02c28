"""While the editor writes: the email rendered beside the Markdown as they type (the same
builder as every sent copy), and drafts saved as they go."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Flask, Response, abort, jsonify, request, send_from_directory
from werkzeug.exceptions import RequestEntityTooLarge

from newsletter.auth.sessions import current_editor, login_required
from newsletter.delivery import message
from newsletter.errors import Invalid, NewsletterError, Upstream
from newsletter.extensions import db, settings
from newsletter.issues import actions as issues
from newsletter.issues import images, preflight
from newsletter.issues.image_store import (
    CACHE_SECONDS,
    CONTENT_TYPES,
    FolderStore,
    ImageStore,
    image_store,
)
from newsletter.mail.body import slugify
from newsletter.models import ISSUE_UNSENT, Issue
from newsletter.services import mailer
from newsletter.tasks import link_check, mail_setup

bp = Blueprint("writing", __name__, url_prefix="/editor")
# Where readers' mail clients fetch an issue's images: public, no login.
media = Blueprint("media", __name__, url_prefix="/media")

# Gmail shows "[Message clipped]" past this many bytes of HTML: say so beside the preview.
GMAIL_CLIP_BYTES = preflight.GMAIL_CLIP_BYTES
NO_ISSUE = "There is no issue with that number."


def register(app: Flask) -> None:
    """Attach the live preview and autosave to ``app``."""
    app.register_blueprint(bp)
    app.register_blueprint(media)


@bp.url_value_preprocessor
def _admit_a_long_body(endpoint: str | None, _values: dict[str, Any] | None) -> None:
    # As the issue forms: a body of MAX_BODY characters must reach its own check.
    if request.method == "POST":
        request.max_form_memory_size = 4 * issues.MAX_BODY + 4096
    if endpoint == "writing.upload_image":
        request.max_content_length = images.MAX_BYTES + 64 * 1024


def editor_as_reader() -> str:
    """Return the name merge fields show the editor: theirs as a reader, if they are one."""
    editor = current_editor()
    return issues.reader_name(editor.email) if editor else ""


def _fields() -> tuple[str, str, str]:
    form = request.form
    return form.get("subject", ""), form.get("body_md", ""), form.get("preheader", "")


@bp.post("/preview")
@login_required
def live_preview() -> Any:
    """Render the email from the form as it stands; nothing is stored."""
    subject, body_md, preheader = _fields()
    if len(body_md) > issues.MAX_BODY:
        return jsonify({"error": f"The body is longer than {issues.MAX_BODY} characters."}), 400
    try:
        preheader = issues.clean_preheader(preheader)
    except NewsletterError as exc:
        return jsonify({"error": exc.message}), 400
    subject = " ".join(subject.split())[: issues.MAX_SUBJECT] or "(no subject yet)"
    found = mailer()
    try:
        rendered = message.render_issue(
            found,
            subject,
            body_md,
            slugify(subject),
            found.links.sample_unsubscribe,
            preheader=preheader,
            name=editor_as_reader(),
        )
    except NewsletterError as exc:
        return jsonify({"error": exc.message}), 400
    size = len(rendered.html.encode("utf-8"))
    return jsonify(
        {
            "subject": rendered.subject,
            "html": rendered.html,
            "text": rendered.text,
            "bytes": size,
            "clipped": size > GMAIL_CLIP_BYTES,
        }
    )


@bp.post("/issues/<id:issue_id>/autosave")
@login_required
def autosave(issue_id: int) -> Any:
    """Save the draft as typed; say why not when it cannot be (empty subject, queued)."""
    issue = db.get_or_404(Issue, issue_id, description=NO_ISSUE)
    if issue.status not in ISSUE_UNSENT:
        return jsonify({"saved": False, "error": "It is queued now: no more changes."}), 409
    subject, body_md, preheader = _fields()
    try:
        saved = issues.update_issue(issue.id, subject, body_md, preheader)
    except NewsletterError as exc:
        db.session.rollback()
        return jsonify({"saved": False, "error": exc.message}), exc.status
    return jsonify({"saved": True, "at": saved.updated_at.isoformat()})


def preflight_report(issue: Issue) -> preflight.Report:
    """Return what preflight finds in ``issue`` without the network (links and DNS by poll)."""
    return preflight.with_mail_setup(preflight.check(issue, mailer()), mail_setup.mail_setup())


def preflight_gate(issue: Issue, *, test: bool = False) -> tuple[str | None, str]:
    """Say whether ``issue`` may go: (why not, or None; what to add to the flash).

    Failures stop a test and a send; warnings (with any broken link found so far) stop a
    send unless the form's "send anyway" box is ticked, and the flash then names them.
    """
    report = preflight_report(issue)
    if report.failures:
        return "Not sent: " + " ".join(f.message for f in report.failures), ""
    warnings = [f.message for f in report.warnings]
    broken = link_check.broken_links(report.links)
    if broken:
        named = ", ".join(f"{r['url']} ({r['status'] or r['error']})" for r in broken[:5])
        warnings.append(f"{len(broken)} link(s) not answering: {named}.")
    if test or not warnings:
        return None, ""
    if request.form.get("anyway") != "1":
        return (
            "Preflight found something to look at: "
            + " ".join(warnings)
            + " Fix it, or tick “Send anyway” and press the button again.",
            "",
        )
    return None, " Sent anyway despite: " + " ".join(warnings)


@bp.post("/issues/<id:issue_id>/links")
@login_required
def link_status(issue_id: int) -> Any:
    """Answer the issue's link check (queued on the first ask); the page polls this."""
    issue = db.get_or_404(Issue, issue_id, description=NO_ISSUE)
    return jsonify(link_check.link_results(preflight.check(issue, mailer()).links))


@bp.post("/issues/<id:issue_id>/mail-setup")
@login_required
def setup_status(issue_id: int) -> Any:
    """Answer the sending domain's SPF, DKIM and DMARC verdict; the page polls this."""
    db.get_or_404(Issue, issue_id, description=NO_ISSUE)
    found = preflight.with_mail_setup(preflight.Report((), ()), mail_setup.mail_setup())
    warnings = [f.message for f in found.warnings]
    return jsonify({"state": found.setup, "warnings": warnings, "note": found.setup_note})


def _images() -> ImageStore:
    return image_store(settings())


@bp.post("/issues/<id:issue_id>/images")
@login_required
def upload_image(issue_id: int) -> Any:
    """Store an image for the issue; answer the Markdown that shows it, alt text included."""
    db.get_or_404(Issue, issue_id, description=NO_ISSUE)
    upload = request.files.get("image")
    try:
        alt = images.clean_alt(request.form.get("alt"))
        if upload is None or not upload.filename:
            return jsonify({"error": "Choose an image file to upload."}), 400
        name = images.store_image(upload.read(images.MAX_BYTES + 1), _images())
    except Invalid as exc:
        return jsonify({"error": exc.message}), 400
    except NewsletterError as exc:
        return jsonify({"error": exc.message}), exc.status
    url = f"{settings().base_url.rstrip('/')}/media/{images.FOLDER}/{name}"
    return jsonify({"url": url, "markdown": f"![{alt}]({url})"})


@bp.errorhandler(RequestEntityTooLarge)
def _too_large(_exc: RequestEntityTooLarge) -> Any:
    if request.endpoint == "writing.upload_image":
        return jsonify(
            {"error": "The image is larger than 10 MB; please upload a smaller one."}
        ), 413
    return jsonify({"error": "What was sent is larger than this page accepts."}), 413


@media.get(f"/{images.FOLDER}/<name>")
def issue_image(name: str) -> Any:
    """Serve an issue's image by its content-derived name (stable, cacheable for a year)."""
    if not images.NAME.match(name):
        abort(404)
    store = _images()
    if isinstance(store, FolderStore):
        return send_from_directory(store.folder, name, max_age=CACHE_SECONDS)
    try:
        data = store.get(name)
    except Upstream as exc:
        return Response(
            exc.message, status=503, mimetype="text/plain", headers={"Retry-After": "30"}
        )
    if data is None:
        abort(404)
    # Streamed from the bucket under our own address: a year's cache, revalidated by ETag.
    answer = Response(data, mimetype=CONTENT_TYPES[name.rsplit(".", 1)[1]])
    answer.cache_control.public = True
    answer.cache_control.max_age = CACHE_SECONDS
    answer.cache_control.immutable = True
    answer.set_etag(name.split(".", 1)[0])
    return answer.make_conditional(request)
