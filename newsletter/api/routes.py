"""JSON API under /api/v1: bearer tokens, JSON in and out, errors as {"error": {code, message}}."""

from __future__ import annotations

import functools
import json
import logging
from collections.abc import Callable, Mapping
from collections.abc import Set as AbstractSet
from datetime import datetime
from typing import Any, ParamSpec, TypeVar

import redis
import sqlalchemy as sa
from flask import Blueprint, Flask, Response, current_app, g, jsonify, request
from flask.typing import ResponseReturnValue
from werkzeug.exceptions import HTTPException, MethodNotAllowed

from newsletter.api.openapi import build_document
from newsletter.api.serialise import (
    BOUNCE_KINDS,
    DEFAULT_LIMIT,
    ISSUE_STATUS,
    MAX_ID,
    MAX_LIMIT,
    MAX_QUERY,
    SETTABLE_STATUS,
    SUBSCRIBER_STATUS,
    bounce_json,
    issue_json,
    subscriber_json,
)
from newsletter.auth.api_tokens import verify_token
from newsletter.bounces import listing as bounce_listing
from newsletter.errors import Conflict, Invalid, NewsletterError, NotFound
from newsletter.extensions import csrf, db, get_redis
from newsletter.issues import actions as issues
from newsletter.models import (
    ISSUE_UNSENT,
    BounceKind,
    EventKind,
    Issue,
    IssueStatus,
    Subscriber,
    SubscriberEvent,
)
from newsletter.subscribers import limits as ratelimit
from newsletter.subscribers import search
from newsletter.subscribers.state import SIGNUP_ANSWER, bounce, erase, subscribe, unsubscribe
from newsletter.subscribers.validate import clean_name, normalize_email
from newsletter.tasks import dispatch
from newsletter.tasks.mail import queue_owed_confirmation

API_PREFIX = "/api/v1"
bp = Blueprint("api", __name__, url_prefix=API_PREFIX)
csrf.exempt(bp)
log = logging.getLogger(__name__)
P = ParamSpec("P")
R = TypeVar("R")

MAX_BODY = 256 * 1024  # bytes of request body, well above the largest issue body

SUBSCRIBE_ANSWER = SIGNUP_ANSWER


def register(app: Flask) -> None:
    """Attach the API to the app."""
    app.register_blueprint(bp)


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


def _string(data: dict[str, Any], key: str, max_len: int | None = None) -> str:
    value = data.get(key)
    if not isinstance(value, str):
        raise ApiError(422, "invalid_field", f"The field {key} must be a string.", key)
    if max_len is not None and len(value) > max_len:
        raise ApiError(422, "invalid_field", f"The field {key} is too long.", key)
    if "\0" in value:  # no database stores it (PostgreSQL refuses it outright)
        raise ApiError(422, "invalid_field", f"The field {key} contains a NUL character.", key)
    return value


def _int_arg(name: str, default: int | None, lo: int, hi: int) -> int | None:
    raw = request.args.get(name)
    if raw is None or raw == "":
        return default
    if not raw.isascii() or not raw.isdigit() or len(raw) > 18 or not lo <= int(raw) <= hi:
        raise ApiError(400, "invalid_parameter", f"{name} must be a whole number {lo}–{hi}.", name)
    return int(raw)


# --- public: subscribe ------------------------------------------------------------------------


@bp.get("/openapi.json")
def openapi() -> ResponseReturnValue:
    """Return the OpenAPI 3.1 document describing this API."""
    return jsonify(build_document(current_app.config["BASE_URL"]))


@bp.after_request
def allow_embedding_origins(response: Response) -> Response:
    """Let the pages of EMBED_ORIGINS call POST /api/v1/subscribe from a browser (CORS)."""
    origin = request.headers.get("Origin", "")
    if request.path == "/api/v1/subscribe" and origin in current_app.config["EMBED_ORIGINS"]:
        response.headers["Access-Control-Allow-Origin"] = origin
        response.headers.add("Vary", "Origin")
        if request.method == "OPTIONS":
            response.headers["Access-Control-Allow-Methods"] = "POST"
            response.headers["Access-Control-Allow-Headers"] = "Content-Type"
            response.headers["Access-Control-Max-Age"] = "600"
    return response


@bp.post("/subscribe")
def api_subscribe() -> ResponseReturnValue:
    """Sign someone up with double opt-in; the answer never says whether they were known."""
    config = current_app.config
    data = json_body({"email", "name"}, {"email"})
    email = normalize_email(data.get("email"), check_dns=config["EMAIL_CHECK_DNS"])
    name = clean_name(data.get("name"))
    # Only accepted sign-ups count; past the limit a program is told when to come back (the
    # web form asks a person's browser for proof of work instead).
    limit, client = config["SUBSCRIBE_RATE_LIMIT"], request.remote_addr or "-"
    if ratelimit.over_limit(get_redis(), "subscribe", client, limit):
        raise ApiError(
            429,
            "rate_limited",
            "Too many sign-ups from here; try again later.",
            **{"Retry-After": str(ratelimit.retry_after(limit))},
        )
    result = subscribe(db.session(), email, name, ip=request.remote_addr, source="api")
    db.session.commit()
    ratelimit.count(get_redis(), "subscribe", client, limit)
    queue_owed_confirmation(result)  # never raises for Redis
    return jsonify(SUBSCRIBE_ANSWER), 202


# --- subscribers ------------------------------------------------------------------------------


def _subscriber(subscriber_id: int) -> Subscriber:
    # Beyond the column's range the database would refuse the query: simply not found.
    sub = db.session.get(Subscriber, subscriber_id) if 0 < subscriber_id <= MAX_ID else None
    if sub is None:
        raise NotFound(f"No subscriber with id {subscriber_id}.")
    return sub


@bp.get("/subscribers")
@token_required
def list_subscribers() -> ResponseReturnValue:
    """List subscribers newest first; pass next_cursor back as ?cursor= for the next page."""
    status = request.args.get("status") or None
    if status is not None and status not in SUBSCRIBER_STATUS:
        raise ApiError(400, "invalid_parameter", "Unknown status.", "status")
    q = (request.args.get("q") or "").strip()
    if len(q) > MAX_QUERY or "\0" in q:
        raise ApiError(400, "invalid_parameter", "The search is too long or not text.", "q")
    limit = _int_arg("limit", DEFAULT_LIMIT, 1, MAX_LIMIT) or DEFAULT_LIMIT
    cursor = _int_arg("cursor", None, 1, MAX_ID)
    # The editor page's search: trigram indexes on both databases, never a full scan.
    rows = search.page(db.session(), q, status or "", after=cursor, limit=limit + 1)
    more = len(rows) > limit
    rows = rows[:limit]
    return jsonify(
        {
            "data": [subscriber_json(s) for s in rows],
            "next_cursor": str(rows[-1].id) if more and rows else None,
        }
    )


@bp.get("/subscribers/<id:subscriber_id>")
@token_required
def get_subscriber(subscriber_id: int) -> ResponseReturnValue:
    """Return one subscriber."""
    return jsonify(subscriber_json(_subscriber(subscriber_id)))


@bp.patch("/subscribers/<id:subscriber_id>")
@token_required
def patch_subscriber(subscriber_id: int) -> ResponseReturnValue:
    """Change a name, or unsubscribe / mark bounced (the only status changes allowed here)."""
    sub = _subscriber(subscriber_id)
    data = json_body({"name", "status"})
    if "name" in data:
        name = clean_name(_string(data, "name"))
    if "status" in data:
        target = _string(data, "status", 20)
        if target not in SETTABLE_STATUS:
            raise ApiError(
                422,
                "invalid_status",
                "Status can only be set to unsubscribed or bounced; people confirm themselves.",
                "status",
            )
        if sub.status.value != target and sub.status.value not in ("pending", "confirmed"):
            raise ApiError(
                409,
                "invalid_transition",
                f"A subscriber who is {sub.status.value} cannot become {target}.",
                "status",
            )
    if "name" in data and name != sub.name:
        sub.name = name
        db.session.add(SubscriberEvent(subscriber=sub, kind=EventKind.EDITED, detail="name (api)"))
    if "status" in data and sub.status.value != target:
        if target == "unsubscribed":
            unsubscribe(db.session(), sub.id, detail="api")
        else:
            bounce(db.session(), sub.id, detail="marked bounced via the api")
    db.session.commit()
    db.session.refresh(sub)
    return jsonify(subscriber_json(sub))


@bp.delete("/subscribers/<id:subscriber_id>")
@token_required
def delete_subscriber(subscriber_id: int) -> ResponseReturnValue:
    """Erase a person: every row with their address or name."""
    sub = _subscriber(subscriber_id)
    erase(db.session(), sub.email)
    db.session.commit()
    return "", 204


# --- issues -----------------------------------------------------------------------------------


def _issue(issue_id: int) -> Issue:
    issue = db.session.get(Issue, issue_id) if 0 < issue_id <= MAX_ID else None
    if issue is None:
        raise NotFound(f"No issue with id {issue_id}.")
    return issue


@bp.get("/issues")
@token_required
def list_issues() -> ResponseReturnValue:
    """List issues newest first; pass next_cursor back as ?cursor= for the next page."""
    raw_status = request.args.get("status") or None
    if raw_status is not None and raw_status not in ISSUE_STATUS:
        raise ApiError(400, "invalid_parameter", "Unknown status.", "status")
    status = IssueStatus(raw_status) if raw_status else None
    limit = _int_arg("limit", DEFAULT_LIMIT, 1, MAX_LIMIT) or DEFAULT_LIMIT
    cursor = _int_arg("cursor", None, 1, MAX_ID)
    rows = issues.issues_page(status, cursor, limit + 1)
    more = len(rows) > limit
    rows = rows[:limit]
    return jsonify(
        {
            "data": [issue_json(i) for i in rows],
            "next_cursor": str(rows[-1].id) if more and rows else None,
        }
    )


@bp.get("/bounces")
@token_required
def list_bounces() -> ResponseReturnValue:
    """List bounces and complaints newest first; pass next_cursor back as ?cursor=."""
    raw_kind = request.args.get("kind") or None
    if raw_kind is not None and raw_kind not in BOUNCE_KINDS:
        raise ApiError(400, "invalid_parameter", "Unknown kind.", "kind")
    limit = _int_arg("limit", DEFAULT_LIMIT, 1, MAX_LIMIT) or DEFAULT_LIMIT
    cursor = _int_arg("cursor", None, 1, MAX_ID)
    kind = BounceKind(raw_kind) if raw_kind else None
    rows = bounce_listing.recent(db.session(), kind=kind, before=cursor, limit=limit + 1)
    more = len(rows) > limit
    rows = rows[:limit]
    return jsonify(
        {
            "data": [bounce_json(b) for b in rows],
            "next_cursor": str(rows[-1].id) if more and rows else None,
        }
    )


@bp.post("/issues")
@token_required
def create_issue() -> ResponseReturnValue:
    """Create a draft issue from a subject and a Markdown body."""
    data = json_body({"subject", "body_md"}, {"subject", "body_md"})
    subject, body = _string(data, "subject"), _string(data, "body_md")
    issue = issues.create_issue(subject, body)
    return jsonify(issue_json(issue)), 201


@bp.get("/issues/<id:issue_id>")
@token_required
def get_issue(issue_id: int) -> ResponseReturnValue:
    """Return one issue."""
    return jsonify(issue_json(_issue(issue_id)))


@bp.patch("/issues/<id:issue_id>")
@token_required
def update_issue(issue_id: int) -> ResponseReturnValue:
    """Change the subject and/or body of an issue that has not gone out."""
    issue = _issue(issue_id)
    data = json_body({"subject", "body_md"})
    subject = _string(data, "subject") if "subject" in data else issue.subject
    body = _string(data, "body_md") if "body_md" in data else issue.body_md
    # Checked before the subject and body, so a late edit hears "too late" whatever it holds.
    if issue.status not in ISSUE_UNSENT:
        raise Conflict(f"Issue {issue_id} is {issue.status.value}; too late.")
    issue = issues.update_issue(issue_id, subject, body)
    return jsonify(issue_json(issue))


@bp.get("/issues/<id:issue_id>/preview")
@token_required
def preview_issue(issue_id: int) -> ResponseReturnValue:
    """Return the email as subscribers get it: subject, text and HTML."""
    _issue(issue_id)
    rendered = issues.preview(issue_id)
    return jsonify({"subject": rendered.subject, "text": rendered.text, "html": rendered.html})


@bp.post("/issues/<id:issue_id>/test")
@token_required
def test_issue(issue_id: int) -> ResponseReturnValue:
    """Send one test copy to an address."""
    _issue(issue_id)
    data = json_body({"to"}, {"to"})
    try:
        address = normalize_email(_string(data, "to", 300))
    except Invalid as exc:  # the validator names its input "email"; here it is "to"
        raise ApiError(422, "invalid_email", exc.message, "to") from None
    dispatch.send_test(issue_id, address)
    return jsonify({"message": f"A test copy went to {address}."}), 202


def _parse_at(value: Any) -> datetime:
    if not isinstance(value, str) or len(value) > 64:
        raise ApiError(422, "invalid_at", "at must be an ISO 8601 date-time string.", "at")
    try:
        at = datetime.fromisoformat(value.replace("Z", "+00:00") if value.endswith("Z") else value)
    except ValueError:
        raise ApiError(422, "invalid_at", "at must be an ISO 8601 date-time.", "at") from None
    if at.tzinfo is None:
        raise ApiError(422, "invalid_at", "at needs a time zone, e.g. +00:00.", "at")
    return at


@bp.post("/issues/<id:issue_id>/send")
@token_required
def send_issue(issue_id: int) -> ResponseReturnValue:
    """Queue the issue now, or schedule it with {"at": "<ISO 8601 with zone>"}."""
    _issue(issue_id)
    # The body is optional: no body (or an empty one) means "now".
    data = json_body({"at"}) if request.get_data(cache=True).strip() else {}
    at = _parse_at(data["at"]) if data.get("at") is not None else None
    message = dispatch.send_issue(issue_id, at)
    db.session.expire_all()
    return jsonify({"message": message, "issue": issue_json(_issue(issue_id))}), 202


_ACTIONS: dict[str, Callable[[int], str]] = {
    "pause_issue": dispatch.pause_issue,
    "resume_issue": dispatch.resume_issue,
    "cancel_issue": dispatch.cancel_issue,
}


def _action(issue_id: int, name: str) -> ResponseReturnValue:
    _issue(issue_id)
    message = _ACTIONS[name](issue_id)
    db.session.expire_all()
    return jsonify({"message": message, "issue": issue_json(_issue(issue_id))})


@bp.post("/issues/<id:issue_id>/pause")
@token_required
def pause_issue(issue_id: int) -> ResponseReturnValue:
    """Pause a send."""
    return _action(issue_id, "pause_issue")


@bp.post("/issues/<id:issue_id>/resume")
@token_required
def resume_issue(issue_id: int) -> ResponseReturnValue:
    """Resume a paused send."""
    return _action(issue_id, "resume_issue")


@bp.post("/issues/<id:issue_id>/cancel")
@token_required
def cancel_issue(issue_id: int) -> ResponseReturnValue:
    """Cancel a send or a schedule."""
    return _action(issue_id, "cancel_issue")


@bp.get("/issues/<id:issue_id>/status")
@token_required
def issue_status(issue_id: int) -> ResponseReturnValue:
    """Return delivery counts, rate and ETA."""
    _issue(issue_id)
    return jsonify(issues.issue_status(issue_id))
