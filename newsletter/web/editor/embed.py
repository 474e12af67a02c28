"""The embeddable form page: the snippet to paste on another site, shown live beside it.

A form may be made for a group: the editor picks one of the existing tags (``?tag=NAME``) and
the snippet carries it signed in a hidden field, so whoever signs up through it gets the tag.
"""

from __future__ import annotations

import sqlalchemy as sa
from flask import Blueprint, Flask, render_template, request

from newsletter.auth.sessions import login_required
from newsletter.errors import Invalid, NotFound
from newsletter.extensions import db, settings
from newsletter.models import Tag
from newsletter.subscribers.groups import GROUP_FIELD, group_value
from newsletter.subscribers.tags import find_tags

bp = Blueprint("embed_page", __name__, url_prefix="/editor")


def register(app: Flask) -> None:
    """Attach this page to the app."""
    app.register_blueprint(bp)


@bp.get("/embed")
@login_required
def embed() -> tuple[str, int]:
    """Show the plain-HTML sign-up form to paste on a blog, and how it looks."""
    found = settings()
    wanted = (request.args.get("tag") or "").strip()
    tag, group, error = "", "", ""
    if wanted:
        try:
            tag = find_tags(db.session(), [wanted])[0].name
            group = group_value(found.secret_key, found.secret_key_fallbacks, tag)
        except (Invalid, NotFound):
            error = f"There is no tag named {wanted[:60]}: choose one from the list."
    tags = db.session.scalars(sa.select(Tag.name).order_by(Tag.key)).all()
    page = render_template(
        "editor/embed.html",
        action=f"{found.base_url}/embed/subscribe",
        origins=found.embed_origins,
        tags=tags,
        tag=tag,
        group=group,
        group_field=GROUP_FIELD,
        error=error,
    )
    return page, 400 if error else 200
