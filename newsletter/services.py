"""The app's collaborators built once from its settings, for the edges and the jobs.

``cli/``, ``web/``, ``api/`` and ``tasks/`` take the Mailer and the link signer from here; the
domain packages below them (``issues``, ``subscribers``, ``bounces``, ``webhooks``, ``mail``)
never reach for the app: they are handed what they need.
"""

from __future__ import annotations

import dataclasses
import functools

from flask import Flask, has_app_context

from newsletter.branding.store import BrandCache, load
from newsletter.config import Settings
from newsletter.extensions import db, settings, this_app
from newsletter.mail.brand import Brand
from newsletter.mail.render import Mailer
from newsletter.subscribers.links import Tokens, tokens_for


def mailer(app: Flask | None = None) -> Mailer:
    """Return the app's Mailer, built once from its settings (again when they are replaced)."""
    app = this_app(app)
    found: Mailer | None = app.extensions.get("mailer")
    if found is None or found.settings is not settings(app):
        found = app.extensions["mailer"] = Mailer(
            settings(app), app.template_folder or "templates", functools.partial(brand, app)
        )
    return found


def brand_cache(app: Flask | None = None) -> BrandCache:
    """Return the app's cache of the look set at /editor/settings."""
    app = this_app(app)
    found: BrandCache | None = app.extensions.get("brand")
    if found is None:
        found = app.extensions["brand"] = BrandCache()
    return found


def brand(app: Flask | None = None) -> Brand:
    """Return the look every page and mail shows: /editor/settings over the environment.

    The one place the environment's NEWSLETTER_NAME and POSTAL_ADDRESS are overridden; pages
    get it as ``settings``/``brand`` (app.py), mail through the Mailer.
    """
    app = this_app(app)
    found = settings(app)

    def loader() -> Brand:
        if has_app_context():
            return load(db.session(), found)
        with app.app_context():  # a mail rendered outside any context (a thread of its own)
            return load(db.session(), found)

    return brand_cache(app).get(loader, lambda: Brand.from_settings(found))


def branded_settings(app: Flask | None = None) -> Settings:
    """Return the settings with the name and postal address set at /editor/settings.

    For the readers of Settings that speak for the newsletter outside a page or a mail: the
    feed's title and the doctor's postal-address check.
    """
    found = brand(app)
    return dataclasses.replace(
        settings(app), newsletter_name=found.name, postal_address=found.postal_address
    )


def tokens(app: Flask | None = None) -> Tokens:
    """Return the app's link signer, built once from its settings (again when they change)."""
    app = this_app(app)
    current = settings(app)
    found: tuple[Tokens, object] | None = app.extensions.get("tokens")
    if found is None or found[1] is not current:
        found = app.extensions["tokens"] = (tokens_for(current), current)
    return found[0]
