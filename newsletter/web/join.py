"""The page a reader's join link opens: the button that adds a group's tag (a GET changes
nothing), and what it did."""

from __future__ import annotations

from flask import Blueprint, Flask

from newsletter.extensions import csrf, db, settings
from newsletter.subscribers.groups import JoinClaim, join_group, read_join
from newsletter.web.pages import bad_link, page

bp = Blueprint("join", __name__)


def register(app: Flask) -> None:
    """Attach this page to the app."""
    app.register_blueprint(bp)


def _claim(token: str) -> JoinClaim | None:
    found = settings()
    return read_join(found.secret_key, found.secret_key_fallbacks, token)


@bp.get("/join/<token>")
def join_page(token: str) -> tuple[str, int]:
    """Show the group the link offers and the button; change nothing."""
    claim = _claim(token)
    if claim is None:
        return bad_link()
    return page("public/join_group.html", group=claim.tag, joined=False)


@bp.post("/join/<token>")
@csrf.exempt  # the signed token, only ever mailed to the reader, is the proof
def join_submit(token: str) -> tuple[str, int]:
    """Add the group's tag to the reader the link was mailed to."""
    claim = _claim(token)
    if claim is None:
        return bad_link()
    name = join_group(db.session(), claim)
    if name is None:
        db.session.rollback()
        return bad_link(410, "gone")
    db.session.commit()
    return page("public/join_group.html", group=name, joined=True)
