"""One error hierarchy for everything a user can get wrong or an upstream can refuse.

Each error carries a message written for the person who caused it. The web pages, the JSON
API and the CLI each map these classes once (``app.py``, ``api/plumbing.py``, ``cli/``): a
caller never inspects ``args``.

``message`` is English, its parts filled in (what the API, the CLI and logs show).
``template`` and ``params`` are the same message before filling in: a page translates the
template through the catalogue and fills in the parts after (``error_text`` in ``app.py``).
"""

from __future__ import annotations

from collections.abc import Mapping


class NewsletterError(Exception):
    """An action that cannot be done; ``message`` says why, in plain words."""

    status = 400
    code = "bad_request"
    #: Whether trying the same thing again later may succeed.
    retryable = False

    def __init__(
        self,
        message: str,
        *,
        field: str | None = None,
        params: Mapping[str, object] | None = None,
    ) -> None:
        self.template = message
        self.params = dict(params or {})
        self.message = message % self.params if self.params else message
        super().__init__(self.message)
        self.field = field


class NotFound(NewsletterError):
    """The thing named does not exist (or is not visible to the caller)."""

    status = 404
    code = "not_found"


class Invalid(NewsletterError):
    """Input that is not acceptable; ``field`` names the input at fault.

    A message with a variable part names it ``%(name)s`` and gets it as a keyword:
    ``Invalid("name", N_("Please keep your name under %(limit)s characters."), limit=100)``.
    """

    status = 422
    code = "invalid"

    def __init__(self, field: str, message: str, **params: object) -> None:
        super().__init__(message, field=field, params=params)


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
