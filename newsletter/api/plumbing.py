"""The API's plumbing: its blueprint, bearer tokens, JSON bodies and parameters, and errors as
{"error": {code, message}}."""

from __future__ import annotations

import functools
import json
import logging
import re
from collections.abc import Callable, Mapping
from collections.abc import Set as AbstractSet
from typing import Any, ParamSpec, TypeVar

import redis
import sqlalchemy as sa
from flask import Blueprint, Response, g, jsonify, request
from werkzeug.exceptions import HTTPException, MethodNotAllowed

from newsletter.api.serialise import CURSOR_PATTERN, MAX_ID
from newsletter.auth.api_tokens import verify_token
from newsletter.errors import Invalid, NewsletterError
from newsletter.extensions import csrf, db

API_PREFIX = "/api/v1"
bp = Blueprint("api", __name__, url_prefix=API_PREFIX)
csrf.exempt(bp)
log = logging.getLogger(__name__)
P = ParamSpec("P")
R = TypeVar("R")

MAX_BODY = 256 * 1024  # bytes of request body, well above the largest issue body


class ApiError(Exception):
    """A refusal of the request itself (token, body, parameters), not of what it asks for."""

    def __init__(
        self, status: int, code: str, message: str, field: str | None = None, **headers: str
    ) -> None:
        super().__init__(message)
        self.status, self.code, self.message, self.field = status, code, message, field
        self.headers = headers


def error_response(
    status: int,
    code: str,
    message: str,
    field: str | None = None,
    headers: Mapping[str, str] | None = None,
) -> Response:
    """Return the JSON error body every API failure uses."""
    body: dict[str, Any] = {"code": code, "message": message}
    if field:
        body["field"] = field
    response = jsonify({"error": body})
    response.status_code = status
    for key, value in (headers or {}).items():
        response.headers[key] = value
    return response


@bp.errorhandler(ApiError)
def api_error(exc: ApiError) -> Response:
    """Answer a refused request with its status, code and headers."""
    return error_response(exc.status, exc.code, exc.message, exc.field, exc.headers)


def _invalid_code(exc: Invalid) -> str:
    # Clients match on these codes: issue routes have always answered "invalid_issue" for any
    # bad subject or body, the subscriber routes a code that names the field.
    if request.path.startswith(f"{API_PREFIX}/issues"):
        return "invalid_issue"
    return f"invalid_{exc.field}"


@bp.errorhandler(NewsletterError)
def domain_error(exc: NewsletterError) -> Response:
    """Answer what the domain refused: nothing the request began is kept."""
    db.session.rollback()
    code = _invalid_code(exc) if isinstance(exc, Invalid) else exc.code
    return error_response(exc.status, code, exc.message, exc.field)


@bp.errorhandler(HTTPException)
def http_error(exc: HTTPException) -> Response:
    """Answer Flask's own refusals (no such route, wrong method) in the API's JSON shape."""
    code = (exc.name or "error").lower().replace(" ", "_")
    headers = {}
    if isinstance(exc, MethodNotAllowed) and exc.valid_methods:
        headers["Allow"] = ", ".join(exc.valid_methods)
    return error_response(exc.code or 500, code, exc.description or exc.name, headers=headers)


@bp.errorhandler(Exception)
def unexpected(exc: Exception) -> Response:
    """Answer anything else without a traceback; an unreachable Redis or database is a 503."""
    db.session.rollback()
    if isinstance(exc, redis.RedisError):
        log.error("API request failed: Redis did not answer (%s)", request.path)
        return error_response(
            503,
            "unavailable",
            "The queue is not answering; try again shortly.",
            headers={"Retry-After": "30"},
        )
    if isinstance(exc, sa.exc.DBAPIError) and exc.connection_invalidated:
        # The database restarted under this request; the pool reconnects on the next one.
        log.warning("API request met a lost database connection (%s)", request.path)
        return error_response(
            503, "unavailable", "Please try again in a moment.", headers={"Retry-After": "5"}
        )
    log.exception("unhandled API error on %s", request.path)
    return error_response(500, "internal_error", "Something went wrong; nothing was changed.")


# --- plumbing ---------------------------------------------------------------------------------


def token_required(view: Callable[P, R]) -> Callable[P, R]:
    """Let the request through only with a valid, unrevoked bearer token."""

    @functools.wraps(view)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        header = request.headers.get("Authorization", "")
        scheme, _, value = header.partition(" ")
        challenge = {"WWW-Authenticate": 'Bearer realm="api"'}
        if scheme.lower() != "bearer" or not value.strip():
            raise ApiError(
                401,
                "unauthorized",
                "Send an API token as 'Authorization: Bearer <token>'.",
                **challenge,
            )
        token = verify_token(db.session(), value.strip())
        if token is None:
            challenge["WWW-Authenticate"] = 'Bearer realm="api", error="invalid_token"'
            raise ApiError(401, "invalid_token", "That token is unknown or revoked.", **challenge)
        g.api_token = token
        return view(*args, **kwargs)

    return wrapper


def json_body(
    allowed: AbstractSet[str], required: AbstractSet[str] = frozenset()
) -> dict[str, Any]:
    """Parse the request body as a JSON object with only the allowed keys."""
    if request.mimetype != "application/json":
        raise ApiError(415, "unsupported_media_type", "Send the body as application/json.")
    if request.content_length is not None and request.content_length > MAX_BODY:
        raise ApiError(413, "too_large", "The request body is too large.")
    raw = request.get_data(cache=False)
    if len(raw) > MAX_BODY:
        raise ApiError(413, "too_large", "The request body is too large.")
    try:
        data = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError):
        raise ApiError(400, "bad_json", "The body is not valid JSON.") from None
    if not isinstance(data, dict):
        raise ApiError(400, "bad_json", "The body must be a JSON object.")
    unknown = sorted(set(data) - allowed)
    if unknown:
        raise ApiError(422, "unknown_field", f"Unknown field: {unknown[0]}.", unknown[0][:50])
    missing = sorted(required - set(data))
    if missing:
        raise ApiError(422, "missing_field", f"The field {missing[0]} is required.", missing[0])
    return data


def string_field(data: dict[str, Any], key: str, max_len: int | None = None) -> str:
    value = data.get(key)
    if not isinstance(value, str):
        raise ApiError(422, "invalid_field", f"The field {key} must be a string.", key)
    if max_len is not None and len(value) > max_len:
        raise ApiError(422, "invalid_field", f"The field {key} is too long.", key)
    if "\0" in value:  # no database stores it (PostgreSQL refuses it outright)
        raise ApiError(422, "invalid_field", f"The field {key} contains a NUL character.", key)
    return value


def int_arg(name: str, default: int | None, lo: int, hi: int) -> int | None:
    raw = request.args.get(name)
    if raw is None or raw == "":
        return default
    if not raw.isascii() or not raw.isdigit() or len(raw) > 18 or not lo <= int(raw) <= hi:
        raise ApiError(400, "invalid_parameter", f"{name} must be a whole number {lo}–{hi}.", name)
    return int(raw)


def cursor_arg() -> int | None:
    """Return ``?cursor=`` as the document allows it: any number of up to ten digits.

    The lists run newest first, below the cursor: 0 is past the last row (an empty page), a
    number past the largest id is before the first (the list from the top, as no cursor).
    """
    raw = request.args.get("cursor")
    if raw is None or raw == "":
        return None
    if not re.fullmatch(CURSOR_PATTERN, raw, flags=re.ASCII):
        raise ApiError(
            400, "invalid_parameter", "cursor must be the next_cursor of a page.", "cursor"
        )
    cursor = int(raw)
    return cursor if cursor <= MAX_ID else None
