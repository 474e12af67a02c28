"""What every reader's page shares: rendering with the sender's address, the bad-link page."""

from __future__ import annotations

import functools
from email.utils import parseaddr
from typing import Any

from flask import render_template

from newsletter.extensions import settings

# Our tokens are under 100 characters, or ~600 with a 100-character name in non-Latin script;
# anything longer is not worth verifying.
MAX_TOKEN = 800


def page(template: str, status: int = 200, **ctx: Any) -> tuple[str, int]:
    """Render a reader's page; every one may show the address to add to contacts."""
    return render_template(template, from_address=from_address(), **ctx), status


def from_address() -> str:
    """Return the bare address of MAIL_FROM."""
    return _address_of(settings().mail_from)


@functools.lru_cache(maxsize=8)
def _address_of(mail_from: str) -> str:
    return parseaddr(mail_from)[1]


def bad_link(status: int = 400, reason: str = "invalid", **ctx: Any) -> tuple[str, int]:
    """The one page for a link we cannot use; it never says whose link it was."""
    return page("public/bad_link.html", status, reason=reason, **ctx)
