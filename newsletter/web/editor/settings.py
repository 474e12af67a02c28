"""``/editor/settings``: the newsletter's name, pitch, logo, accent colour, footer, postal
address, welcome text and front-page text, applied at once to every page and mail."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Flask, flash, redirect, render_template, request, url_for
from werkzeug.exceptions import RequestEntityTooLarge

from newsletter.auth.sessions import current_editor, login_required
from newsletter.branding import store, validate
from newsletter.errors import Invalid
from newsletter.extensions import db, settings
from newsletter.services import brand, brand_cache

bp = Blueprint("settings_page", __name__, url_prefix="/editor")

FIELDS = (*store.TEXT_FIELDS, "accent", "logo_url")
# Room for the other fields and the multipart framing around a logo at its limit.
FORM_OVERHEAD = 64 * 1024


def register(app: Flask) -> None:
    """Attach the settings page to ``app``."""
    app.register_blueprint(bp)


@bp.url_value_preprocessor
def _admit_the_logo(endpoint: str | None, _values: dict[str, Any] | None) -> None:
    # Before CSRF protection reads the form: the page takes a logo up to its limit, no more.
    if endpoint == "settings_page.settings_page" and request.method == "POST":
        request.max_content_length = validate.LOGO_MAX_BYTES + FORM_OVERHEAD


@bp.errorhandler(RequestEntityTooLarge)
def too_large(exc: RequestEntityTooLarge) -> Any:
    """Answer an oversized upload or field with the settings page, saying what the limits are."""
    if request.endpoint != "settings_page.settings_page" or current_editor() is None:
        return render_template("error.html", error=exc), 413
    if (request.content_length or 0) > validate.LOGO_MAX_BYTES + FORM_OVERHEAD:
        message = (
            "The logo is larger than 2 MB; please upload a smaller image. Nothing was changed."
        )
    else:
        message = (
            "A text is far longer than this page takes (the longest, the welcome mail's text "
            "and the front page's text, take 2000 characters). Nothing was changed."
        )
    return _page(_stored(), error=message, field=None, code=413)


def _stored() -> dict[str, str]:
    row = store.read(db.session())
    return {name: (getattr(row, name) or "") if row else "" for name in FIELDS}


def _page(values: dict[str, str], *, error: str | None, field: str | None, code: int) -> Any:
    row = store.read(db.session())
    page = render_template(
        "editor/settings.html",
        values=values,
        error=error,
        error_field=field,
        env=settings(),
        look=brand(),
        has_upload=bool(row and row.logo_png),
        limits=validate.LIMITS,
    )
    return page, code


@bp.route("/settings", methods=["GET", "POST"])
@login_required
def settings_page() -> Any:
    """Show the look and save it: every field checked first, nothing stored if one is wrong."""
    if request.method == "GET":
        return _page(_stored(), error=None, field=None, code=200)
    values = {name: request.form.get(name, "") for name in FIELDS}
    upload = request.files.get("logo")
    data = upload.stream.read(validate.LOGO_MAX_BYTES + 1) if upload and upload.filename else None
    try:
        saved = store.save(
            db.session(),
            settings(),
            values,
            logo_upload=data,
            remove_logo=request.form.get("remove_logo") == "1",
        )
    except Invalid as exc:
        db.session.rollback()
        return _page(values, error=exc.message, field=exc.field, code=400)
    brand_cache().put(saved.brand)
    for warning in saved.warnings:
        flash(warning, "warning")
    flash("Saved: every page and the next mail use it now.")
    return redirect(url_for("settings_page.settings_page"))
