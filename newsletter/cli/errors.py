"""How a refused action reaches the terminal: one line on stderr, a non-zero exit."""

from __future__ import annotations

import click

from newsletter.errors import NewsletterError
from newsletter.extensions import db

# sysexits.h EX_TEMPFAIL: an MTA's pipe keeps the mail and runs the command again later
# (any other non-zero exit makes it bounce the mail back).
EX_TEMPFAIL = 75


def fail(exc: NewsletterError) -> click.ClickException:
    """Return the click error that prints ``exc``'s message and exits 1 (nothing is kept)."""
    db.session.rollback()
    return click.ClickException(exc.message)
