"""Times as the editor reads them: in the zone on their account (their browser's until they
pick one), the UTC time on hover; and the form that picks the zone."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

from flask import Blueprint, Flask, flash, redirect, render_template, request, url_for
from markupsafe import Markup, escape

from newsletter.auth.sessions import current_editor, login_required, safe_next
from newsletter.auth.zones import COMMON_ZONES, local_text, set_time_zone, utc_text, zone_of
from newsletter.errors import Invalid
from newsletter.extensions import db

bp = Blueprint("times", __name__, url_prefix="/editor")


def register(app: Flask) -> None:
    """Attach the zone form and the ``local_time`` template helper to ``app``."""
    app.register_blueprint(bp)
    app.jinja_env.globals["local_time"] = local_time
    app.jinja_env.globals["editor_zone"] = editor_zone
    app.jinja_env.globals["common_zones"] = COMMON_ZONES


def editor_zone() -> ZoneInfo | None:
    """Return the logged-in editor's chosen zone, or None (their browser's is used then)."""
    return zone_of(current_editor())


def local_time(moment: datetime | None, date_only: bool = False) -> Markup:
    """Return ``moment`` as a <time> in the editor's zone, with the UTC time as its title.

    Without a chosen zone it is written in UTC and the nav's script rewrites it in the
    browser's zone; with one, the page says it as is and the script leaves it alone.
    """
    if moment is None:
        return Markup("")
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    zone = editor_zone()
    text = local_text(moment, zone or ZoneInfo("UTC"), date_only=date_only)
    marks = (" data-date" if date_only else "") + (" data-zoned" if zone else "")
    return Markup('<time datetime="{}" title="{}"{}>{}</time>').format(
        moment.isoformat(), utc_text(moment), Markup(marks), escape(text)
    )


@bp.get("/time-zone")
@login_required
def zone_page() -> Any:
    """Show the zone picker on its own."""
    return render_template("editor/time_zone.html", error=None, value=None, back=None)


@bp.post("/time-zone")
@login_required
def save_zone() -> Any:
    """Keep the zone the editor picked (or their browser's, offered by the nav's script)."""
    editor = current_editor()
    assert editor is not None  # login_required
    back = safe_next(request.form.get("next"), url_for("times.zone_page"))
    name = request.form.get("time_zone", "")
    try:
        zone = set_time_zone(db.session(), editor, name)
    except Invalid as exc:
        db.session.rollback()
        page = render_template(
            "editor/time_zone.html", error=exc.message, value=name[:200], back=back
        )
        return page, 400
    if zone is None:
        flash("Times are shown in your browser's zone again.")
    else:
        flash(f"Times are shown in {zone.key} now (UTC when you point at one).")
    return redirect(back)
