"""The embeddable form page: the snippet to paste on another site, shown live beside it."""

from __future__ import annotations

from flask import Blueprint, Flask, render_template

from newsletter.auth.sessions import login_required
from newsletter.extensions import settings

bp = Blueprint("embed_page", __name__, url_prefix="/editor")


def register(app: Flask) -> None:
    """Attach this page to the app."""
    app.register_blueprint(bp)


@bp.get("/embed")
@login_required
def embed() -> str:
    """Show the plain-HTML sign-up form to paste on a blog, and how it looks."""
    found = settings()
    return render_template(
        "editor/embed.html",
        action=f"{found.base_url}/embed/subscribe",
        origins=found.embed_origins,
    )
