"""Helpers the tests share: mail parts and links, forms, ports, a clean database.

Fixtures live in conftest.py; factories and actors in the modules of this package:
``editors`` (accounts, logged-in clients, API tokens), ``readers`` (sign-ups through the
form), ``smtp`` (SMTP servers that fail on purpose), ``browser`` (Chromium fixtures).
"""

from __future__ import annotations

import os
import re
import socket
from email.message import EmailMessage

import sqlalchemy as sa

from newsletter.extensions import db

TEST_DATABASE_URL = os.environ.get("TEST_DATABASE_URL", "")
TEST_REDIS_URL = os.environ.get("TEST_REDIS_URL", "")


def free_port() -> int:
    """Return a TCP port nobody listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def text_part(msg: EmailMessage) -> str:
    part = msg.get_body(preferencelist=("plain",))
    assert part is not None
    return str(part.get_content())


def html_part(msg: EmailMessage) -> str:
    part = msg.get_body(preferencelist=("html",))
    assert part is not None
    return str(part.get_content())


def links(msg: EmailMessage) -> list[str]:
    """Return every http(s) URL in the text part, in order."""
    return re.findall(r"https?://[^\s<>\"')]+", text_part(msg))


def truncate_all() -> None:
    tables = list(reversed(db.metadata.sorted_tables))
    with db.engine.begin() as conn:
        if conn.dialect.name == "postgresql":
            names = ", ".join(f'"{t.name}"' for t in tables)
            conn.execute(sa.text(f"TRUNCATE {names} RESTART IDENTITY CASCADE"))
        else:
            for table in tables:
                conn.execute(table.delete())
            # Like RESTART IDENTITY: AUTOINCREMENT tables (subscriber) count from 1 again.
            conn.execute(sa.text("DELETE FROM sqlite_sequence"))


def csrf_from(html: str) -> str:
    """Pull the CSRF token out of a rendered form."""
    match = re.search(r'name="csrf_token" (?:type="hidden" )?value="([^"]+)"', html)
    assert match, "no CSRF token in the page"
    return match.group(1)


def emails_on(html: str) -> list[str]:
    """Return the addresses the editor's subscriber list shows, in order."""
    return re.findall(r'<a href="/editor/subscribers/\d+">([^<]+)</a>', html)
