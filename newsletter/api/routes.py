"""JSON API under /api/v1: one blueprint (plumbing.py) with the routes of subscribers.py,
issues.py and bounces.py attached, and the OpenAPI document that describes them."""

from __future__ import annotations

from flask import Flask, jsonify
from flask.typing import ResponseReturnValue

from newsletter.api import bounces, issues, subscribers
from newsletter.api.openapi import build_document
from newsletter.api.plumbing import bp
from newsletter.extensions import settings

# Importing these modules attaches their routes to the blueprint; register() needs them all.
ROUTE_MODULES = (subscribers, issues, bounces)


def register(app: Flask) -> None:
    """Attach the API to the app."""
    app.register_blueprint(bp)


@bp.get("/openapi.json")
def openapi() -> ResponseReturnValue:
    """Return the OpenAPI 3.1 document describing this API."""
    return jsonify(build_document(settings().base_url))
