"""Keep signed tokens out of every log line: access logs, our own logs, tracebacks' messages.

Confirmation and unsubscribe links are credentials: whoever reads them from a log could
unsubscribe a reader or confirm for them. A record factory redacts them wherever a record is
made (werkzeug, gunicorn, RQ, ours), so no handler or logger can be forgotten.
"""

from __future__ import annotations

import logging
import re
from typing import Any

TOKEN_IN_PATH = re.compile(
    r"(/(?:confirm|unsubscribe|resubscribe)/)(?!resend\b)[A-Za-z0-9_\-.]{6,}", re.ASCII
)
REDACTED = r"\1[redacted]"


def redact(text: str) -> str:
    """Return ``text`` with the token of every confirm/unsubscribe path replaced."""
    return TOKEN_IN_PATH.sub(REDACTED, text)


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
