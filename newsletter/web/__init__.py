"""HTML pages: thin blueprints that parse the request, call one domain function, render."""

from __future__ import annotations

import re

from flask import current_app
from werkzeug.routing import ValidationError


def row_id(text: str) -> int | None:
    """Return ``text`` as a row id if the app's ``<id:…>`` URL converter takes it, else None."""
    # One bound for every id a page reads, in a path or a cursor: the converter's.
    url_map = current_app.url_map
    converter = url_map.converters["id"](url_map)
    if not re.fullmatch(converter.regex, text):
        return None
    try:
        return int(converter.to_python(text))
    except ValidationError:
        return None
