"""The OpenAPI 3.1 document for /api/v1, kept beside the routes it describes (subscribers.py,
issues.py, bounces.py).

Fields, statuses and limits are imported from where the code enforces them (serialise.py,
the models, the validators), never restated here.
"""

from __future__ import annotations

from typing import Any

from newsletter.api.serialise import (
    BOUNCE_FIELDS,
    BOUNCE_KINDS,
    CURSOR_PATTERN,
    DEFAULT_LIMIT,
    ISSUE_FIELDS,
    ISSUE_STATUS,
    MAX_ID,
    MAX_LIMIT,
    MAX_QUERY,
    SETTABLE_STATUS,
    SUBSCRIBER_FIELDS,
    SUBSCRIBER_STATUS,
    Field,
)
from newsletter.api.tag_schemas import SEGMENT, TAG_PARAM, subscriber_writes
from newsletter.issues.actions import MAX_BODY, MAX_PREHEADER, MAX_SUBJECT
from newsletter.models import MAX_EMAIL_LENGTH
from newsletter.subscribers.validate import MAX_NAME

STR = {"type": "string"}
INT = {"type": "integer"}
EMAIL = {**STR, "format": "email", "maxLength": MAX_EMAIL_LENGTH}
# No database stores a NUL character; plumbing.string_field refuses it with a 422.
NO_NUL = "^[^\\u0000]*$"
# subscribers.validate.clean_name: no line breaks, control characters or encoded words.
NAME = {
    **STR,
    "maxLength": MAX_NAME,
    "pattern": "^(?!.*=\\?)[^\\u0000-\\u001f\\u007f-\\u009f]*$",
    "description": "a display name: no line breaks, control characters or '=?'",
}
# issues.actions refuses a subject or body that is empty once trimmed.
SUBJECT = {**STR, "minLength": 1, "maxLength": MAX_SUBJECT, "pattern": NO_NUL}
BODY_MD = {**STR, "minLength": 1, "maxLength": MAX_BODY, "pattern": NO_NUL}
# One line in the inbox after the subject; whitespace is folded; empty: none is added.
PREHEADER = {
    **STR,
    "maxLength": MAX_PREHEADER,
    "pattern": "^[^\\u0000-\\u0008\\u000b\\u000c\\u000e-\\u001f\\u007f-\\u009f]*$",
    "description": "the line an inbox shows after the subject (hidden in the mail)",
}
ERROR_TEXT = {
    400: "Malformed request (bad JSON or query parameter)",
    401: "Missing, unknown or revoked bearer token",
    404: "No such resource",
    409: "Not possible in the resource's current state",
    413: "Body too large",
    415: "Body is not application/json",
    422: "A field is missing or invalid",
    429: "Too many requests from this address; see Retry-After",
    502: "The mail server refused the message",
    503: "The queue (Redis) is not answering; retry later",
}


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _json(schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _errors(*codes: int) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for code in codes:
        response = _json(_ref("Error"), ERROR_TEXT[code])
        if code == 401:
            response["headers"] = {"WWW-Authenticate": {"schema": STR}}
        out[str(code)] = response
    return out


def _body(name: str, required: bool = True) -> dict[str, Any]:
    return {"required": required, "content": {"application/json": {"schema": _ref(name)}}}


def _page(item: str) -> dict[str, Any]:
    """Return the schema of a cursor-paged list of ``item``."""
    return _obj(
        {
            "data": {"type": "array", "items": _ref(item)},
            "next_cursor": {
                "type": ["string", "null"],
                "description": "pass as ?cursor= for the next page; null on the last",
            },
        },
        ["data", "next_cursor"],
    )


def _obj(props: dict[str, Any], required: list[str] | None = None) -> dict[str, Any]:
    schema: dict[str, Any] = {"type": "object", "properties": props, "additionalProperties": False}
    if required:
        schema["required"] = required
    return schema


def _fields(fields: tuple[Field[Any], ...]) -> dict[str, Any]:
    """Return the schema of an object the API builds from a field list: every key, always."""
    return _obj({f.name: f.schema() for f in fields}, [f.name for f in fields])


ID_PARAM = {"schema": {"type": "integer", "minimum": 1, "maximum": MAX_ID}, "required": True}
SUB_ID = {"name": "subscriber_id", "in": "path", **ID_PARAM}
ISSUE_ID = {"name": "issue_id", "in": "path", **ID_PARAM}
AUTH: list[dict[str, list[str]]] = [{"bearerAuth": []}]
LIMIT_PARAM = {
    "name": "limit",
    "in": "query",
    "schema": {"type": "integer", "minimum": 1, "maximum": MAX_LIMIT, "default": DEFAULT_LIMIT},
}
CURSOR_PARAM = {
    "name": "cursor",
    "in": "query",
    "description": "next_cursor of the previous page",
    "schema": {"type": "string", "pattern": CURSOR_PATTERN},
}
# Every authenticated JSON body may also meet these answers.
BODY_ERRORS = (400, 401, 404, 413, 415, 422, 503)


def _issue_action(summary: str, op_id: str) -> dict[str, Any]:
    return {
        "post": {
            "operationId": op_id,
            "summary": summary,
            "tags": ["issues"],
            "security": AUTH,
            "parameters": [ISSUE_ID],
            "responses": {
                "200": _json(_ref("ActionResult"), "Done; the issue as it is now"),
                **_errors(401, 404, 409, 503),
            },
        }
    }


def build_document(base_url: str) -> dict[str, Any]:
    """Return the OpenAPI document (a fresh dict each call)."""
    schemas = {
        "Error": _obj(
            {
                "error": _obj(
                    {
                        "code": {**STR, "description": "stable, machine-readable"},
                        "message": {**STR, "description": "for people"},
                        "field": {**STR, "description": "the input at fault, if one"},
                    },
                    ["code", "message"],
                )
            },
            ["error"],
        ),
        "SubscribeRequest": _obj({"email": EMAIL, "name": NAME}, ["email"]),
        "SubscribeAccepted": _obj(
            {
                "status": {"type": "string", "const": "accepted"},
                "message": STR,
                "deferred": {
                    "type": "boolean",
                    "description": "many confirmation mails went to this address's domain "
                    "just now: the mail waits its turn (never dropped)",
                },
                "mail_at": {
                    "type": ["string", "null"],
                    "format": "date-time",
                    "description": "when the confirmation mail goes, if deferred; else null",
                },
            },
            ["status", "message", "deferred", "mail_at"],
        ),
        "Subscriber": _fields(SUBSCRIBER_FIELDS),
        "SubscriberList": _page("Subscriber"),
        "IssueList": _page("Issue"),
        "Bounce": _fields(BOUNCE_FIELDS),
        "BounceList": _page("Bounce"),
        **subscriber_writes(NAME, EMAIL, list(SETTABLE_STATUS)),
        "IssueCreate": _obj(
            {"subject": SUBJECT, "body_md": BODY_MD, "preheader": PREHEADER},
            ["subject", "body_md"],
        ),
        "IssuePatch": _obj({"subject": SUBJECT, "body_md": BODY_MD, "preheader": PREHEADER}),
        "Issue": _fields(ISSUE_FIELDS),
        "Preview": _obj({"subject": STR, "text": STR, "html": STR}, ["subject", "text", "html"]),
        "TestRequest": _obj({"to": EMAIL}, ["to"]),
        "SendRequest": _obj(
            {
                "at": {
                    "type": ["string", "null"],
                    "format": "date-time",
                    "description": "schedule for this moment (with a time zone); omit for now",
                },
                "tags": SEGMENT,
            }
        ),
        "Message": _obj({"message": STR}, ["message"]),
        "ActionResult": _obj({"message": STR, "issue": _ref("Issue")}, ["message", "issue"]),
        "IssueProgress": {
            "type": "object",
            "properties": {
                "id": INT,
                "subject": STR,
                "status": {"type": "string", "enum": list(ISSUE_STATUS)},
                "audience": INT,
                "queued": INT,
                "sending": INT,
                "sent": INT,
                "failed": INT,
                "skipped": INT,
                "done": INT,
                "rate_per_s": {"type": "number"},
                "eta_seconds": {"type": ["number", "null"]},
                "pause_reason": STR,
                "possible_duplicates": INT,
                "relay_waiting": {"type": "boolean"},
                "relay_error": STR,
                "relay_retry_in": {"type": ["integer", "null"]},
            },
            "required": [
                "id",
                "subject",
                "status",
                "audience",
                "queued",
                "sent",
                "failed",
                "skipped",
                "done",
            ],
        },
    }
    paths: dict[str, Any] = {
        "/openapi.json": {
            "get": {
                "operationId": "getOpenApi",
                "summary": "This document",
                "tags": ["meta"],
                "responses": {"200": _json({"type": "object"}, "The OpenAPI document")},
            }
        },
        "/subscribe": {
            "post": {
                "operationId": "subscribe",
                "summary": "Sign someone up (double opt-in: they get a confirmation mail)",
                "description": "No token needed. The answer is the same whether the address "
                "is new, pending or already subscribed. Limited per address and per IP; a "
                "domain that had many confirmation mails just now gets this one later "
                "(202 with `deferred` and `mail_at`).",
                "tags": ["subscribers"],
                "security": [],
                "requestBody": _body("SubscribeRequest"),
                "responses": {
                    "202": _json(_ref("SubscribeAccepted"), "Accepted"),
                    **_errors(400, 413, 415, 422, 503),
                    "429": {
                        **_json(_ref("Error"), ERROR_TEXT[429]),
                        "headers": {"Retry-After": {"schema": STR}},
                    },
                },
            }
        },
        "/subscribers": {
            "get": {
                "operationId": "listSubscribers",
                "summary": "List subscribers, newest first (keyset pagination)",
                "tags": ["subscribers"],
                "security": AUTH,
                "parameters": [
                    {
                        "name": "status",
                        "in": "query",
                        "schema": {"type": "string", "enum": list(SUBSCRIBER_STATUS)},
                    },
                    {
                        "name": "q",
                        "in": "query",
                        "description": "search address or name",
                        "schema": {**STR, "maxLength": MAX_QUERY},
                    },
                    TAG_PARAM,
                    LIMIT_PARAM,
                    CURSOR_PARAM,
                ],
                "responses": {
                    "200": _json(_ref("SubscriberList"), "A page of subscribers"),
                    **_errors(400, 401, 422),
                },
            },
            "post": {
                "operationId": "createSubscriber",
                "summary": "Add one person by hand (with tags; confirmed only with a reason)",
                "tags": ["subscribers"],
                "security": AUTH,
                "requestBody": _body("SubscriberCreate"),
                "responses": {
                    "201": _json(_ref("Subscriber"), "The person as added"),
                    **_errors(*BODY_ERRORS, 409),
                },
            },
        },
        "/subscribers/{subscriber_id}": {
            "parameters": [SUB_ID],
            "get": {
                "operationId": "getSubscriber",
                "summary": "One subscriber",
                "tags": ["subscribers"],
                "security": AUTH,
                "responses": {
                    "200": _json(_ref("Subscriber"), "The subscriber"),
                    **_errors(401, 404),
                },
            },
            "patch": {
                "operationId": "updateSubscriber",
                "summary": "Change the name and tags; set the status",
                "tags": ["subscribers"],
                "security": AUTH,
                "requestBody": _body("SubscriberPatch"),
                "responses": {
                    "200": _json(_ref("Subscriber"), "The subscriber as it is now"),
                    **_errors(*BODY_ERRORS, 409),
                },
            },
            "delete": {
                "operationId": "eraseSubscriber",
                "summary": "Erase the person: every row with their address or name",
                "tags": ["subscribers"],
                "security": AUTH,
                "responses": {"204": {"description": "Erased"}, **_errors(401, 404)},
            },
        },
        "/bounces": {
            "get": {
                "operationId": "listBounces",
                "summary": "Bounces and complaints, newest first (cursor paging)",
                "tags": ["bounces"],
                "security": AUTH,
                "parameters": [
                    {
                        "name": "kind",
                        "in": "query",
                        "schema": {"type": "string", "enum": list(BOUNCE_KINDS)},
                    },
                    LIMIT_PARAM,
                    CURSOR_PARAM,
                ],
                "responses": {
                    "200": _json(_ref("BounceList"), "A page of bounces"),
                    **_errors(400, 401),
                },
            },
        },
        "/issues": {
            "get": {
                "operationId": "listIssues",
                "summary": "Issues, newest first (cursor paging)",
                "tags": ["issues"],
                "security": AUTH,
                "parameters": [
                    {
                        "name": "status",
                        "in": "query",
                        "schema": {"type": "string", "enum": list(ISSUE_STATUS)},
                    },
                    LIMIT_PARAM,
                    CURSOR_PARAM,
                ],
                "responses": {
                    "200": _json(_ref("IssueList"), "A page of issues"),
                    **_errors(400, 401),
                },
            },
            "post": {
                "operationId": "createIssue",
                "summary": "Create a draft issue (Markdown body)",
                "tags": ["issues"],
                "security": AUTH,
                "requestBody": _body("IssueCreate"),
                "responses": {
                    "201": _json(_ref("Issue"), "The new draft"),
                    **_errors(400, 401, 413, 415, 422),
                },
            },
        },
        "/issues/{issue_id}": {
            "parameters": [ISSUE_ID],
            "get": {
                "operationId": "getIssue",
                "summary": "One issue",
                "tags": ["issues"],
                "security": AUTH,
                "responses": {"200": _json(_ref("Issue"), "The issue"), **_errors(401, 404)},
            },
            "patch": {
                "operationId": "updateIssue",
                "summary": "Change subject and/or body before it goes out, or correct a sent one",
                "description": (
                    "Before it is queued, subject, body and preheader can change. Once sent, "
                    "subject and body can be corrected: the archive page and the feed entry "
                    "show the new text with an updated date, each correction is logged, and "
                    "nobody is mailed again; the preheader stays as it went out. While a send "
                    "is under way, or after a cancel, the answer is 409."
                ),
                "tags": ["issues"],
                "security": AUTH,
                "requestBody": _body("IssuePatch"),
                "responses": {
                    "200": _json(_ref("Issue"), "The issue as it is now"),
                    **_errors(*BODY_ERRORS, 409),
                },
            },
        },
        "/issues/{issue_id}/preview": {
            "get": {
                "operationId": "previewIssue",
                "summary": "The email as subscribers get it",
                "tags": ["issues"],
                "security": AUTH,
                "parameters": [ISSUE_ID],
                "responses": {
                    "200": _json(_ref("Preview"), "Subject, text and HTML"),
                    **_errors(401, 404, 409),
                },
            }
        },
        "/issues/{issue_id}/test": {
            "post": {
                "operationId": "testIssue",
                "summary": "Send one test copy",
                "tags": ["issues"],
                "security": AUTH,
                "parameters": [ISSUE_ID],
                "requestBody": _body("TestRequest"),
                "responses": {"202": _json(_ref("Message"), "Sent"), **_errors(*BODY_ERRORS, 502)},
            }
        },
        "/issues/{issue_id}/send": {
            "post": {
                "operationId": "sendIssue",
                "summary": "Queue now, or schedule with a time",
                "description": "Repeating it starts no second send.",
                "tags": ["issues"],
                "security": AUTH,
                "parameters": [ISSUE_ID],
                "requestBody": _body("SendRequest", required=False),
                "responses": {
                    "202": _json(_ref("ActionResult"), "Queued or scheduled"),
                    **_errors(*BODY_ERRORS, 409),
                },
            }
        },
        "/issues/{issue_id}/pause": _issue_action("Pause a send", "pauseIssue"),
        "/issues/{issue_id}/resume": _issue_action("Resume a paused send", "resumeIssue"),
        "/issues/{issue_id}/cancel": _issue_action("Cancel a send or a schedule", "cancelIssue"),
        "/issues/{issue_id}/status": {
            "get": {
                "operationId": "issueStatus",
                "summary": "Delivery counts, rate and ETA",
                "tags": ["issues"],
                "security": AUTH,
                "parameters": [ISSUE_ID],
                "responses": {"200": _json(_ref("IssueProgress"), "Progress"), **_errors(401, 404)},
            }
        },
    }
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "Tip of the Week API",
            "version": "1.0.0",
            "description": "Subscribers and issues. Send 'Authorization: Bearer <token>' "
            "(editors create tokens at /editor/tokens). Errors are always "
            '{"error": {"code": ..., "message": ...}}.',
        },
        "servers": [{"url": f"{base_url}/api/v1"}],
        "security": AUTH,
        "components": {
            "securitySchemes": {"bearerAuth": {"type": "http", "scheme": "bearer"}},
            "schemas": schemas,
        },
        "paths": paths,
    }
