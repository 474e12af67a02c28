"""Email: render every message from templates (render), sign it (dkim), deliver it (smtp)."""

from __future__ import annotations

from flask import Flask

from newsletter.extensions import settings, this_app
from newsletter.mail.render import Mailer


def mailer(app: Flask | None = None) -> Mailer:
    """Return the app's Mailer, built once from its settings (again when they are replaced)."""
    app = this_app(app)
    found: Mailer | None = app.extensions.get("mailer")
    if found is None or found.settings is not settings(app):
        found = app.extensions["mailer"] = Mailer(settings(app), app.template_folder or "templates")
    return found
