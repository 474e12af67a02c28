"""The editors' bounces page: every bounce and complaint, one with its raw notification, and
"Reactivate" to undo one."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Flask, abort, flash, redirect, render_template, request, url_for

from newsletter.auth.sessions import current_editor, login_required
from newsletter.bounces import listing
from newsletter.bounces.record import reactivate
from newsletter.extensions import db
from newsletter.models import Bounce, BounceKind, Subscriber

bp = Blueprint("bounces", __name__, url_prefix="/editor")

PAGE = 50


def register(app: Flask) -> None:
    """Attach these pages to the app."""
    app.register_blueprint(bp)


@bp.get("/bounces")
@login_required
def bounces() -> Any:
    """List bounces and complaints, newest first, optionally of one kind."""
    kind_raw = request.args.get("kind", "")
    try:
        kind = BounceKind(kind_raw) if kind_raw else None
    except ValueError:
        abort(400, description="Unknown kind of bounce.")
    before = request.args.get("before", type=int)
    if before is not None and not 0 < before < 2**31:
        abort(400, description="Not a valid position in the list.")
    rows = listing.recent(db.session(), kind=kind, before=before, limit=PAGE + 1)
    more = len(rows) > PAGE
    return render_template(
        "editor/bounces.html",
        rows=rows[:PAGE],
        kind=kind,
        kinds=list(BounceKind),
        next_before=rows[PAGE - 1].id if more else None,
    )


@bp.get("/bounces/<id:bounce_id>")
@login_required
def bounce_page(bounce_id: int) -> Any:
    """Show one bounce with the notification as it arrived."""
    bounce = db.get_or_404(Bounce, bounce_id, description="No such bounce.")
    sub = db.session.get(Subscriber, bounce.subscriber_id) if bounce.subscriber_id else None
    return render_template("editor/bounce.html", bounce=bounce, subscriber=sub)


@bp.post("/bounces/<id:bounce_id>/reactivate")
@login_required
def reactivate_bounce(bounce_id: int) -> Any:
    """Undo the reader's bounces: a bounced address is confirmed again (history keeps who)."""
    bounce = db.get_or_404(Bounce, bounce_id, description="No such bounce.")
    if bounce.subscriber_id is None:
        flash("That reader has been erased; there is nobody to reactivate.", "error")
        return redirect(url_for("bounces.bounce_page", bounce_id=bounce_id))
    editor = current_editor()
    assert editor is not None  # login_required let only a logged-in editor through
    done = reactivate(db.session(), bounce.subscriber_id, by=editor.email)
    db.session.commit()
    if done is None:
        flash("That reader has been erased; there is nobody to reactivate.", "error")
    elif done.status_changed:
        flash(f"Reactivated: the address is confirmed again ({done.undone} bounces undone).")
    else:
        flash(f"{done.undone} bounces undone; the reader's status did not need to change.")
    return redirect(url_for("bounces.bounce_page", bounce_id=bounce_id))
