"""One error hierarchy for everything a user can get wrong or an upstream can refuse.

Each error carries a message written for the person who caused it. The web pages, the JSON
API and the CLI each map these classes once (``app.py``, ``api/routes.py``, ``cli/``): a
caller never inspects ``args``.
"""

from __future__ import annotations


class NewsletterError(Exception):
    """An action that cannot be done; ``message`` says why, in plain words."""

    status = 400
    code = "bad_request"
    #: Whether trying the same thing again later may succeed.
    retryable = False

    def __init__(self, message: str, *, field: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.field = field


class NotFound(NewsletterError):
    """The thing named does not exist (or is not visible to the caller)."""

    status = 404
    code = "not_found"


class Invalid(NewsletterError):
    """Input that is not acceptable; ``field`` names the input at fault."""

    status = 422
    code = "invalid"

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message, field=field)


class Conflict(NewsletterError):
    """The request is fine, but the thing it names is in a state that does not allow it."""

    status = 409
    code = "conflict"


class Upstream(NewsletterError):
    """A server we depend on (the SMTP relay, a webhook receiver) did not do its part."""

    status = 502
    code = "upstream"

    def __init__(self, message: str, *, retryable: bool = True) -> None:
        super().__init__(message)
        self.retryable = retryable
