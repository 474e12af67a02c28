"""The embeddable form: a plain HTML form on another site posts here.

No CSRF token and no cookie are needed: the form lives on a page we did not serve. What guards
it is what guards our own form (the honeypot, the per-client limit, proof of work past it) and,
when EMBED_ORIGINS is set, the Origin the browser names. The answer is our check-inbox page, or
JSON when the request asks for it.
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Flask, jsonify, request
from werkzeug.wrappers import Response

from newsletter.extensions import csrf, settings
from newsletter.subscribers import limits
from newsletter.subscribers.signup import SIGNUP_ANSWER
from newsletter.web import public, signup
from newsletter.web.pages import page

bp = Blueprint("embed", __name__)

ACTION = "/embed/subscribe"


def register(app: Flask) -> None:
    """Attach the embeddable form's endpoint to the app."""
    app.register_blueprint(bp)


def _wants_json() -> bool:
    best = request.accept_mimetypes.best_match(["text/html", "application/json"])
    return request.is_json or best == "application/json"


def _origin_allowed() -> bool:
    allowed = settings().embed_origins
    origin = request.headers.get("Origin", "")
    # A browser names the page's origin on every cross-site POST; without EMBED_ORIGINS any
    # site may carry the form. "null" is a sandboxed frame or a file: never one listed.
    return not allowed or not origin or origin in allowed


def _json(body: dict[str, Any], status: int) -> Response:
    response = jsonify(body)
    response.status_code = status
    origin = request.headers.get("Origin", "")
    if origin and origin in settings().embed_origins:
        response.headers["Access-Control-Allow-Origin"] = origin
        response.headers.add("Vary", "Origin")
    return response


@bp.post(ACTION)
@csrf.exempt
def embed_subscribe() -> Any:
    """Sign someone up from a form on another site; answer as our own form does."""
    as_json = _wants_json()
    if not _origin_allowed():
        message = "This site may not carry the sign-up form."
        if as_json:
            return _json({"error": "origin_not_allowed", "message": message}, 403)
        return page("public/embed_refused.html", 403)
    # A blog's form posts form data, which needs no CORS preflight; a script that wants to send
    # JSON calls POST /api/v1/subscribe instead. A JSON body here is refused, not ignored.
    if request.mimetype not in signup.FORM_TYPES:
        if as_json:
            message = "Send a form; scripts sending JSON call POST /api/v1/subscribe."
            return _json({"error": "unsupported_media_type", "message": message}, 415)
        return page("public/form_expired.html", 415, wrong_type=True)
    answer = signup.handle("embed")
    if answer.outcome is signup.Outcome.INVALID:
        assert answer.error is not None
        if as_json:
            error = {"error": "invalid", "field": answer.error.field, "message": str(answer.error)}
            return _json(error, 400)
        # Our front page, with the form filled in as typed and what to fix.
        return public.front_page(400, answer.error, **answer.typed)
    if answer.outcome is signup.Outcome.CHALLENGE:
        if as_json:
            retry = limits.retry_after(settings().subscribe_rate_limit)
            response = _json(
                {
                    "error": "proof_of_work_required",
                    "message": "Solve the challenge and send it as the field altcha.",
                    "challenge": answer.challenge,
                },
                429,
            )
            response.headers["Retry-After"] = str(retry)
            return response
        return public.challenge_page(answer, ACTION)
    if as_json:
        return _json(SIGNUP_ANSWER, 202)
    return public.accepted(answer)
