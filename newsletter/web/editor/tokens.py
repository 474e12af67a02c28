"""The editor's API tokens page: create (shown once), list, revoke."""

from __future__ import annotations

from typing import Any

from flask import (
    Blueprint,
    Flask,
    flash,
    redirect,
    render_template,
    request,
    url_for,
)

from newsletter.auth import api_tokens as apitokens
from newsletter.auth.sessions import current_editor, login_required
from newsletter.extensions import db

bp = Blueprint("tokens", __name__, url_prefix="/editor")


def register(app: Flask) -> None:
    """Attach these pages to the app."""
    app.register_blueprint(bp)


@bp.route("/tokens", methods=["GET", "POST"])
@login_required
def tokens() -> Any:
    """List API tokens and create one (its value is shown this once)."""
    new_secret = None
    if request.method == "POST":
        name = (request.form.get("name") or "").strip()
        if len(name) > 100 or any(ord(c) < 32 for c in name):
            flash("Give the token a short name on one line.", "error")
            return render_template(
                "editor/tokens.html", tokens=apitokens.list_tokens(db.session()), new_secret=None
            ), 400
        editor = current_editor()
        assert editor is not None  # login_required let only a logged-in editor through
        made = apitokens.create_token(db.session(), editor.id, name)
        db.session.commit()
        new_secret = made.secret
    return render_template(
        "editor/tokens.html", tokens=apitokens.list_tokens(db.session()), new_secret=new_secret
    )


@bp.post("/tokens/<id:token_id>/revoke")
@login_required
def revoke_token(token_id: int) -> Any:
    """Revoke an API token at once."""
    if apitokens.revoke_token(db.session(), token_id):
        db.session.commit()
        flash("Token revoked: requests with it now get 401.")
    else:
        flash("That token was already revoked or does not exist.", "error")
    return redirect(url_for("tokens.tokens"))
