"""How a refused action reaches the terminal: one line on stderr, a non-zero exit."""

from __future__ import annotations

import click

from newsletter.errors import NewsletterError
from newsletter.extensions import db


def fail(exc: NewsletterError) -> click.ClickException:
    """Return the click error that prints ``exc``'s message and exits 1 (nothing is kept)."""
    db.session.rollback()
    return click.ClickException(exc.message)
