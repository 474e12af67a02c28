"""Subscribers over the API: the public sign-up (with CORS for embedding pages), then list, read,
change and erase."""

from __future__ import annotations

from flask import Response, jsonify, request
from flask.typing import ResponseReturnValue

from newsletter.api.plumbing import (
    ApiError,
    bp,
    cursor_arg,
    int_arg,
    json_body,
    string_field,
    token_required,
)
from newsletter.api.serialise import (
    DEFAULT_LIMIT,
    MAX_ID,
    MAX_LIMIT,
    MAX_QUERY,
    SETTABLE_STATUS,
    SUBSCRIBER_STATUS,
    subscriber_json,
)
from newsletter.errors import Invalid, NotFound
from newsletter.extensions import db, get_redis, settings
from newsletter.models import Subscriber, utcnow
from newsletter.subscribers import limits as ratelimit
from newsletter.subscribers import search
from newsletter.subscribers.editing import add_person, change_status, clean_reason, edit_person
from newsletter.subscribers.signup import SIGNUP_ANSWER, subscribe
from newsletter.subscribers.state import erase
from newsletter.subscribers.tags import find_tags, parse_tags, preload_tags
from newsletter.subscribers.validate import clean_name, normalize_email
from newsletter.tasks.mail import queue_confirmation, queue_owed_confirmation

SUBSCRIBE_ANSWER = SIGNUP_ANSWER


@bp.after_request
def allow_embedding_origins(response: Response) -> Response:
    """Let the pages of EMBED_ORIGINS call POST /api/v1/subscribe from a browser (CORS)."""
    origin = request.headers.get("Origin", "")
    if request.path == "/api/v1/subscribe" and origin in settings().embed_origins:
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
    found = settings()
    data = json_body({"email", "name"}, {"email"})
    email = normalize_email(data.get("email"), check_dns=found.email_check_dns)
    name = clean_name(data.get("name"))
    # Only accepted sign-ups count; past the limit a program is told when to come back (the
    # web form asks a person's browser for proof of work instead).
    limit, client = found.subscribe_rate_limit, request.remote_addr or "-"
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
    # When the domain had its share of confirmation mails the mail waits its turn: say until
    # when (the same for a known address, so the answer still names nobody).
    mail_at = result.mail_later(utcnow())
    answer = dict(SUBSCRIBE_ANSWER, deferred=mail_at is not None, mail_at=None)
    if mail_at is not None:
        answer["mail_at"] = mail_at.isoformat(timespec="seconds")
        answer["message"] = (
            "If the address can receive mail, a confirmation link will go out at mail_at: "
            "many sign-ups at this domain came first."
        )
    return jsonify(answer), 202


def _subscriber(subscriber_id: int) -> Subscriber:
    # Beyond the column's range the database would refuse the query: simply not found.
    sub = db.session.get(Subscriber, subscriber_id) if 0 < subscriber_id <= MAX_ID else None
    if sub is None:
        raise NotFound(f"No subscriber with id {subscriber_id}.")
    return sub


def _tag_filter() -> int | None:
    """Return the id of the tag ``?tag=`` names (any case), None without one; 422 if unknown."""
    raw = request.args.get("tag")
    if raw is None or not raw.strip():
        return None
    try:
        return find_tags(db.session(), [raw])[0].id
    except Invalid as exc:
        raise ApiError(422, "invalid_parameter", f"Not a tag name: {exc}", "tag") from None
    except NotFound as exc:
        raise ApiError(422, "unknown_tag", str(exc), "tag") from None


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
    tag_id = _tag_filter()
    limit = int_arg("limit", DEFAULT_LIMIT, 1, MAX_LIMIT) or DEFAULT_LIMIT
    cursor = cursor_arg()
    # The editor page's search: trigram indexes on both databases, never a full scan.
    rows = search.page(db.session(), q, status or "", after=cursor, limit=limit + 1, tag=tag_id)
    more = len(rows) > limit
    rows = rows[:limit]
    preload_tags(db.session(), rows)
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


def _tags(data: dict[str, object]) -> list[str]:
    raw = data.get("tags")
    if not isinstance(raw, list) or not all(isinstance(t, str) for t in raw):
        raise ApiError(422, "invalid_field", "The field tags must be a list of strings.", "tags")
    return parse_tags(raw)


@bp.post("/subscribers")
@token_required
def create_subscriber() -> ResponseReturnValue:
    """Add one person by hand: pending (a confirmation mail goes) or confirmed with a reason."""
    data = json_body({"email", "name", "tags", "status", "reason"}, {"email"})
    email = normalize_email(string_field(data, "email"))
    name = clean_name(string_field(data, "name")) if "name" in data else ""
    tags = _tags(data) if "tags" in data else []
    status = string_field(data, "status", 20) if "status" in data else "pending"
    if status not in ("pending", "confirmed"):
        raise Invalid("status", "A new person is pending (mailed the confirmation) or confirmed.")
    reason = None
    if status == "confirmed":
        reason = clean_reason(string_field(data, "reason") if "reason" in data else "")
    sub, due = add_person(db.session(), email, name, tags, reason=reason, by="api")
    db.session.commit()
    if due is not None:
        queue_confirmation(sub.id, due)
    db.session.refresh(sub)
    return jsonify(subscriber_json(sub)), 201


@bp.patch("/subscribers/<id:subscriber_id>")
@token_required
def patch_subscriber(subscriber_id: int) -> ResponseReturnValue:
    """Change the name and tags, or the status (confirmed only with a reason)."""
    sub = _subscriber(subscriber_id)
    data = json_body({"name", "status", "tags", "reason"})
    name = clean_name(string_field(data, "name")) if "name" in data else None
    tags = _tags(data) if "tags" in data else None
    target = None
    if "status" in data:
        target = string_field(data, "status", 20)
        if target not in SETTABLE_STATUS:
            raise ApiError(
                422,
                "invalid_status",
                "Status can be set to confirmed (with a reason), unsubscribed or bounced.",
                "status",
            )
    reason = string_field(data, "reason", 500) if "reason" in data else None
    edit_person(db.session(), sub.id, name=name, tags=tags, by="api")
    if target is not None:
        change_status(db.session(), sub.id, target, reason=reason, by="api")
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
