"""The editor's page for the evergreen sequence: which tips, in what order, where readers are."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Flask, flash, redirect, render_template, request, url_for
from sqlalchemy.exc import IntegrityError

from newsletter.auth.sessions import login_required
from newsletter.delivery import sequence_choice
from newsletter.errors import Invalid
from newsletter.extensions import db

bp = Blueprint("sequence", __name__, url_prefix="/editor")


def register(app: Flask) -> None:
    """Attach this page to the app."""
    app.register_blueprint(bp)


def _page(error: str | None = None, code: int = 200) -> Any:
    session = db.session()
    tips = sequence_choice.choices(session)
    positions = sequence_choice.readers_at(session)
    in_sequence = sum(1 for t in tips if t.number is not None)
    page = render_template(
        "editor/sequence.html",
        tips=tips,
        in_sequence=in_sequence,
        positions=positions,
        readers=sum(n for _, n in positions),
        finished=sum(n for p, n in positions if in_sequence and p >= in_sequence),
        waiting=dict(positions).get(0, 0),
        error=error,
    )
    return page, code


@bp.route("/sequence", methods=["GET", "POST"])
@login_required
def page() -> Any:
    """Show the sequence's tips in order with their counts; move, leave out or put back one."""
    if request.method == "GET":
        return _page()
    session = db.session()
    if request.form.get("action") == "reset":
        sequence_choice.reset(session)
        session.commit()
        flash("The sequence is every archived tip again, oldest first.")
        return redirect(url_for("sequence.page"))
    raw = request.form.get("issue_id", "")
    try:
        if not (raw.isascii() and raw.isdigit()):
            raise Invalid("issue_id", "Choose a tip.")
        done = sequence_choice.change(
            session, int(raw), request.form.get("action", ""), request.form.get("to", "")
        )
        session.commit()
    except Invalid as exc:
        session.rollback()
        return _page(error=exc.message, code=400)
    except IntegrityError:  # another editor rewrote the list at the same moment
        session.rollback()
        return _page(error="The sequence changed at the same moment: try again.", code=409)
    flash(done)
    return redirect(url_for("sequence.page") + f"#tip-{raw}")
