"""Per-app singletons built from the config: the Mailer and the token signer."""

from __future__ import annotations

from flask import Flask, current_app

from .mail import Mailer
from .tokens import Tokens, tokens_for


def mailer(app: Flask | None = None) -> Mailer:
    """Return the app's Mailer, built once."""
    app = app or current_app._get_current_object()  # type: ignore[attr-defined]
    found = app.extensions.get("mailer")
    if found is None:
        found = app.extensions["mailer"] = Mailer(app.config, app.template_folder or "templates")
    return found


def tokens(app: Flask | None = None) -> Tokens:
    """Return the app's token signer, built once."""
    app = app or current_app._get_current_object()  # type: ignore[attr-defined]
    found = app.extensions.get("tokens")
    if found is None:
        found = app.extensions["tokens"] = tokens_for(app.config)
    return found
