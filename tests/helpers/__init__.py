"""Helpers the tests share: mail parts and links, forms, ports, a clean database.

Fixtures live in conftest.py; factories and actors in the modules of this package:
``editors`` (accounts, logged-in clients, API tokens), ``readers`` (sign-ups through the
form), ``smtp`` (SMTP servers that fail on purpose), ``browser`` (Chromium fixtures).
"""

from __future__ import annotations

import dataclasses
import os
import re
import socket
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from flask import Flask

from newsletter.config import Settings, load_settings
from newsletter.extensions import db, replace_settings, settings

TEST_DATABASE_URL = os.environ.get("TEST_DATABASE_URL", "")
TEST_REDIS_URL = os.environ.get("TEST_REDIS_URL", "")


TEST_SECRET_KEY = "test-secret-key-that-is-long-enough-for-production-use"


def override_settings(app: Flask, **changes: Any) -> Settings:
    """Change some of ``app``'s settings (by field name, e.g. ``batch_size=2``) for this test."""
    changed = dataclasses.replace(settings(app), **changes)
    replace_settings(app, changed)
    return changed


def settings_from(instance_path: Path | None = None, **env: str) -> Settings:
    """Build real settings from environment-like ``env`` (a test's own relay, say)."""
    values = {"NEWSLETTER_ENV": "testing", "SECRET_KEY": TEST_SECRET_KEY, **env}
    return load_settings(values, instance_path or Path("/nonexistent/instance"))


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
