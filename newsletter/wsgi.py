"""WSGI entry for gunicorn: `gunicorn newsletter.wsgi:app`. A bad setting exits with one line."""

from __future__ import annotations

import sys

from dotenv import load_dotenv

from . import create_app
from .config import ConfigError

load_dotenv()
try:
    app = create_app()
except ConfigError as exc:
    print(f"newsletter: bad setting: {exc}", file=sys.stderr)
    sys.exit(2)
