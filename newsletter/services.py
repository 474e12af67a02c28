"""The app's collaborators built once from its settings, for the edges and the jobs.

``cli/``, ``web/``, ``api/`` and ``tasks/`` take the Mailer and the link signer from here; the
domain packages below them (``issues``, ``subscribers``, ``bounces``, ``webhooks``, ``mail``)
never reach for the app: they are handed what they need.
"""

from __future__ import annotations

from flask import Flask

from newsletter.extensions import settings, this_app
from newsletter.mail.render import Mailer
from newsletter.subscribers.links import Tokens, tokens_for


def mailer(app: Flask | None = None) -> Mailer:
    """Return the app's Mailer, built once from its settings (again when they are replaced)."""
    app = this_app(app)
    found: Mailer | None = app.extensions.get("mailer")
    if found is None or found.settings is not settings(app):
        found = app.extensions["mailer"] = Mailer(settings(app), app.template_folder or "templates")
    return found


def tokens(app: Flask | None = None) -> Tokens:
    """Return the app's link signer, built once from its settings (again when they change)."""
    app = this_app(app)
    current = settings(app)
    found: tuple[Tokens, object] | None = app.extensions.get("tokens")
    if found is None or found[1] is not current:
        found = app.extensions["tokens"] = (tokens_for(current), current)
    return found[0]
