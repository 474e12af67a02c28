"""The uploaded logo and the favicon: the look set at /editor/settings, served to everyone."""

from __future__ import annotations

import threading
from typing import Any

from flask import Blueprint, Flask, Response, abort

from newsletter.branding import store, validate
from newsletter.extensions import db
from newsletter.services import brand

bp = Blueprint("branding", __name__)

YEAR = 365 * 24 * 3600
_icons: dict[tuple[int, str], bytes] = {}  # (version, accent) → favicon.ico bytes
_icons_lock = threading.Lock()


def register(app: Flask) -> None:
    """Attach the logo and favicon routes to ``app``."""
    app.register_blueprint(bp)


@bp.get("/branding/logo-<int:version>.png")
def logo(version: int) -> Any:
    """Serve the uploaded logo; its address names its version, so it is cached for good."""
    found = store.logo_png(db.session())
    db.session.rollback()  # hold no transaction (a lock, on SQLite) while the bytes go out
    if found is None or found[1] != version:
        abort(404, "There is no such logo; it may have been replaced.")
    response = Response(found[0], mimetype="image/png")
    response.headers["Cache-Control"] = f"public, max-age={YEAR}, immutable"
    return response


@bp.get("/favicon.ico")
def favicon() -> Any:
    """Serve the favicon: the logo when one is uploaded, else a square in the accent colour."""
    look = brand()
    key = (look.version, look.accent)
    with _icons_lock:
        icon = _icons.get(key)
    if icon is None:
        found = store.logo_png(db.session()) if look.logo_url.startswith("/") else None
        db.session.rollback()
        icon = validate.favicon(found[0] if found else None, look.accent)
        with _icons_lock:
            _icons.clear()  # only the current look's icon is worth keeping
            _icons[key] = icon
    response = Response(icon, mimetype="image/vnd.microsoft.icon")
    response.headers["Cache-Control"] = "public, max-age=3600"
    return response
