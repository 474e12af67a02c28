"""The `newsletter` command's groups, one module each, attached to the app's CLI."""

from __future__ import annotations

from flask import Flask

from newsletter.cli import bounces, doctor, editors, issues, service, subscribers, tokens


def register(app: Flask) -> None:
    """Attach the service's commands to the app's CLI group."""
    for module in (service, subscribers, issues, editors, tokens, doctor, bounces):
        module.register(app)
