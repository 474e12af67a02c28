"""Keep signed tokens out of every log line: access logs, our own logs, tracebacks' messages.

Confirmation and unsubscribe links are credentials: whoever reads them from a log could
unsubscribe a reader or confirm for them. A record factory redacts them wherever a record is
made (werkzeug, gunicorn, RQ, ours), so no handler or logger can be forgotten.
"""

from __future__ import annotations

import logging
import re
from typing import Any


def _spelled_any_way(word: str) -> str:
    # Routing decodes %XX and a client may send any letter that way (/%75nsubscribe/…).
    return "".join(f"(?:{c}|%{ord(c):02x})" for c in word)


PATH_WORDS = "|".join(_spelled_any_way(w) for w in ("confirm", "unsubscribe", "resubscribe"))
SLASHES = r"(?:/|\\|%2f|%5c)+"  # repeated, encoded or backslashed: servers fold them all
TOKEN_CHARS = r"[A-Za-z0-9_\-.%~=]"
TOKEN_IN_PATH = re.compile(
    rf"({SLASHES}(?:{PATH_WORDS}){SLASHES})(?!resend\b){TOKEN_CHARS}{{6,}}",
    re.ASCII | re.IGNORECASE,
)
# A token handed as a parameter: ?token=…, &t=… (the resend form, a link someone built).
TOKEN_IN_QUERY = re.compile(rf"([?&;](?:token|t)=){TOKEN_CHARS}{{6,}}", re.ASCII | re.IGNORECASE)
# Wherever else one turns up (a mangled Referer, a message quoting one): the shape of an
# itsdangerous token, payload[.timestamp].signature, the signature 27 characters of HMAC-SHA1.
TOKEN_SHAPE = re.compile(
    r"(?<![A-Za-z0-9_\-])[A-Za-z0-9_\-]{2,}(?:\.[A-Za-z0-9_\-]{4,8})?\.[A-Za-z0-9_\-]{27}"
    r"(?![A-Za-z0-9_\-])",
    re.ASCII,
)
REDACTED = r"\1[redacted]"


def redact(text: str) -> str:
    """Return ``text`` with every confirm/unsubscribe token replaced, however it was written."""
    text = TOKEN_IN_PATH.sub(REDACTED, text)
    text = TOKEN_IN_QUERY.sub(REDACTED, text)
    return TOKEN_SHAPE.sub("[redacted]", text)


class RedactTokens(logging.Filter):
    """A logging filter that rewrites a record's message with its tokens redacted."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # a broken format string is the logger's problem, not ours
            return True
        cleaned = redact(message)
        if cleaned != message:
            record.msg, record.args = cleaned, ()
        return True


_FILTER = RedactTokens()


def install() -> None:
    """Redact tokens in every log record this process makes from now on (idempotent)."""
    current = logging.getLogRecordFactory()
    if getattr(current, "_redacts_tokens", False):
        return

    def factory(*args: Any, **kwargs: Any) -> logging.LogRecord:
        record = current(*args, **kwargs)
        _FILTER.filter(record)
        return record

    factory._redacts_tokens = True  # type: ignore[attr-defined]
    logging.setLogRecordFactory(factory)
    # Handlers that already exist also get the filter, for records made by hand.
    for name in (None, "werkzeug", "gunicorn.access", "gunicorn.error", "newsletter"):
        logger = logging.getLogger(name)
        if _FILTER not in logger.filters:
            logger.addFilter(_FILTER)
