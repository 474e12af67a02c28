"""What a reader touches: the front page, subscribe, confirm, unsubscribe, health.

Thin views: parse the request, call one function of ``subscriptions``, render a page.
Token-authenticated POSTs (confirm, unsubscribe, resubscribe, resend) need no CSRF token and
no cookie: the signed token in the URL is the proof, and one-click unsubscribe (RFC 8058)
comes from mail providers that have neither.
"""

from __future__ import annotations

import logging
from typing import Any

import sqlalchemy as sa
from flask import (
    Blueprint,
    Flask,
    current_app,
    jsonify,
    render_template,
    request,
)
from flask_wtf.csrf import CSRFError

from newsletter.errors import Invalid
from newsletter.extensions import csrf, db, get_redis
from newsletter.models import Issue, IssueStatus, Subscriber, SubscriberStatus, utcnow
from newsletter.subscribers import limits as ratelimit
from newsletter.subscribers.links import ConfirmClaim, TokenError, TokenExpired, tokens
from newsletter.subscribers.state import (
    CONFIRMABLE,
    ConfirmOutcome,
    SubscribeResult,
    confirm,
    reserve_confirmation,
    subscribe,
    unsubscribe,
)
from newsletter.subscribers.validate import clean_name, normalize_email
from newsletter.tasks.mail import queue_confirmation, queue_welcome
from newsletter.web.pages import MAX_TOKEN, bad_link, page

log = logging.getLogger(__name__)

bp = Blueprint("public", __name__)

HONEYPOT_FIELD = "website"
FORM_TYPES = ("application/x-www-form-urlencoded", "multipart/form-data")
LATEST_TIPS = 5


def register(app: Flask) -> None:
    """Attach the reader's pages to the app."""
    app.register_blueprint(bp)


# --- helpers ---------------------------------------------------------------------------------


def _check_inbox() -> tuple[str, int]:
    """The answer to every sign-up."""
    return page("public/check_inbox.html")


def _latest_tips() -> list[Issue]:
    query = (
        sa.select(Issue)
        .where(Issue.status == IssueStatus.SENT)
        .order_by(Issue.sent_at.desc().nulls_last(), Issue.id.desc())
        .limit(LATEST_TIPS)
    )
    return list(db.session.scalars(query))


def _index(status: int = 200, error: Invalid | None = None, **form: str) -> tuple[str, int]:
    return page("public/index.html", status, tips=_latest_tips(), error=error, form=form)


def _echo(typed: str) -> str:
    return typed if len(typed) <= 300 else ""


def _queue_confirmation(result: SubscribeResult) -> None:
    # Redis down: the database says the mail is owed, and the reconciler sends it later.
    if result.send_confirmation and result.due_at is not None:
        queue_confirmation(result.subscriber_id, result.due_at)


def _confirm_claim(token: str) -> ConfirmClaim:
    if len(token) > MAX_TOKEN:
        raise TokenError("too long")
    return tokens().read_confirm(token, current_app.config["CONFIRM_MAX_AGE"])


def _unsubscribe_id(token: str) -> int:
    if len(token) > MAX_TOKEN:
        raise TokenError("too long")
    return tokens().read_unsubscribe(token)


@bp.errorhandler(CSRFError)
def csrf_failed(exc: CSRFError) -> tuple[str, int]:
    return page("public/form_expired.html", 400)


# --- the front page and subscribing -----------------------------------------------------------


@bp.get("/")
def index() -> tuple[str, int]:
    """Show what the newsletter is, the subscribe form and the latest tips."""
    return _index()


@bp.post("/subscribe")
def subscribe_view() -> Any:
    """Record a sign-up and queue the confirmation mail; answer the same whatever happened."""
    if request.mimetype not in FORM_TYPES:
        return page("public/form_expired.html", 415, wrong_type=True)
    config = current_app.config
    limit = config["SUBSCRIBE_RATE_LIMIT"]
    if not ratelimit.allow(get_redis(), "subscribe", request.remote_addr or "-", limit):
        html = render_template("public/rate_limited.html", minutes=max(1, limit[1] // 60))
        return html, 429, {"Retry-After": str(limit[1])}
    if request.form.get(HONEYPOT_FIELD):
        # A bot filled the field people never see: answer as usual, keep nothing.
        return _check_inbox()
    raw_email = request.form.get("email", "")
    raw_name = request.form.get("name", "")
    try:
        email = normalize_email(raw_email, check_dns=config["EMAIL_CHECK_DNS"])
        name = clean_name(raw_name)
    except Invalid as exc:
        # Echo what was typed so it can be fixed, unless it is too long to be a typo.
        return _index(400, exc, email=_echo(raw_email), name=_echo(raw_name))
    try:
        result = subscribe(db.session(), email, name, ip=request.remote_addr, source="form")
        db.session.commit()
    except sa.exc.DBAPIError as exc:
        if not exc.connection_invalidated:
            raise
        # The database restarted since this worker's connection was last used: the pool has
        # let go of the dead connections, and a sign-up is safe to try again once.
        db.session.rollback()
        result = subscribe(db.session(), email, name, ip=request.remote_addr, source="form")
        db.session.commit()
    _queue_confirmation(result)
    return _check_inbox()


# --- confirming --------------------------------------------------------------------------------


@bp.get("/confirm/<token>")
def confirmpage(token: str) -> tuple[str, int]:
    """Show one button that confirms; change nothing (mail scanners fetch every link)."""
    try:
        claim = _confirm_claim(token)
    except TokenExpired:
        return page("public/confirm_expired.html", 410, token=token)
    except TokenError:
        return bad_link()
    sub = db.session.get(Subscriber, claim.subscriber_id)
    if sub is None:
        return bad_link(404, "unknown")
    if sub.status is SubscriberStatus.CONFIRMED:
        return page("public/confirm.html", already=True, token=token)
    if sub.status not in CONFIRMABLE or sub.version != claim.version:
        return bad_link(400, "stale")
    return page("public/confirm.html", already=False, token=token)


@bp.post("/confirm/<token>")
@csrf.exempt
def confirm_submit(token: str) -> tuple[str, int]:
    """Confirm the subscription the token names, then queue the welcome mail."""
    try:
        claim = _confirm_claim(token)
    except TokenExpired:
        return page("public/confirm_expired.html", 410, token=token)
    except TokenError:
        return bad_link()
    now = utcnow()
    outcome = confirm(
        db.session(),
        claim.subscriber_id,
        claim.version,
        name=claim.name,
        ip=request.remote_addr,
        now=now,
    )
    db.session.commit()
    if outcome is ConfirmOutcome.UNKNOWN:
        return bad_link(404, "unknown")
    if outcome is ConfirmOutcome.STALE:
        return bad_link(400, "stale")
    if outcome is ConfirmOutcome.CONFIRMED:
        queue_welcome(claim.subscriber_id, now)
    return page("public/welcome.html")


@bp.post("/confirm/resend")
@csrf.exempt
def confirm_resend() -> tuple[str, int]:
    """Send a fresh confirmation link to whoever an (expired) confirm token names."""
    token = request.form.get("token", "")
    claim: ConfirmClaim | None
    try:
        claim = _confirm_claim(token)
    except TokenExpired as exc:
        claim = exc.claim
    except TokenError:
        return bad_link()
    sub = db.session.get(Subscriber, claim.subscriber_id) if claim is not None else None
    # A pending reader's old link may ask again; one of someone who left only while it is
    # current, i.e. it answers the sign-up that asked them back.
    if (
        claim is not None
        and sub is not None
        and sub.status in CONFIRMABLE
        and (sub.status is SubscriberStatus.PENDING or sub.version == claim.version)
    ):
        sid, email, now = sub.id, sub.email, utcnow()
        reserved = reserve_confirmation(db.session(), sid, email, now, name=claim.name)
        db.session.commit()
        _queue_confirmation(SubscribeResult(sid, reserved, now))
    # The same answer whatever happened: the page must not tell who is on the list.
    return page("public/check_inbox.html", resent=True)


# --- unsubscribing -----------------------------------------------------------------------------


def _reader_of(token: str) -> Subscriber | tuple[str, int]:
    """Return the reader an unsubscribe token names, or the page saying the link is bad."""
    try:
        subscriber_id = _unsubscribe_id(token)
    except TokenError:
        return bad_link()
    sub = db.session.get(Subscriber, subscriber_id)
    return bad_link(404, "unknown") if sub is None else sub


@bp.get("/unsubscribe/<token>")
def unsubscribepage(token: str) -> tuple[str, int]:
    """Show one button that unsubscribes; change nothing."""
    sub = _reader_of(token)
    if not isinstance(sub, Subscriber):
        return sub
    return page("public/unsubscribe.html", token=token, state=sub.status.value)


@bp.post("/unsubscribe/<token>")
@csrf.exempt
def unsubscribe_submit(token: str) -> tuple[str, int]:
    """Unsubscribe at once (also RFC 8058 one-click); answer 200 with a page, never a redirect."""
    try:
        subscriber_id = _unsubscribe_id(token)
    except TokenError:
        return bad_link()
    one_click = request.form.get("List-Unsubscribe") == "One-Click"
    sub = unsubscribe(
        db.session(),
        subscriber_id,
        ip=request.remote_addr,
        detail="one-click" if one_click else "page",
    )
    db.session.commit()
    return page("public/unsubscribed.html", token=token, erased=sub is None)


@bp.post("/resubscribe/<token>")
@csrf.exempt
def resubscribe(token: str) -> tuple[str, int]:
    """Put an unsubscribed reader back on the way in: through confirmation again."""
    sub = _reader_of(token)
    if not isinstance(sub, Subscriber):
        return sub
    result = subscribe(db.session(), sub.email, ip=request.remote_addr, source="resubscribe")
    db.session.commit()
    _queue_confirmation(result)
    return page("public/check_inbox.html")


# --- the rest ----------------------------------------------------------------------------------


@bp.get("/safe-sender")
def safe_sender() -> tuple[str, int]:
    """Explain, per mail provider, how to keep the tips out of spam."""
    return page("public/safe_sender.html")


@bp.get("/healthz")
def healthz() -> Any:
    """Answer 200 when the database and Redis both answer, else 503 naming the one that failed."""
    checks: dict[str, str] = {}
    try:
        db.session.execute(sa.text("SELECT 1"))
        checks["database"] = "ok"
    except Exception as exc:  # any driver error means the same thing here: not healthy
        db.session.rollback()
        checks["database"] = f"error: {type(exc).__name__}"
    try:
        get_redis().ping()
        checks["redis"] = "ok"
    except Exception as exc:
        checks["redis"] = f"error: {type(exc).__name__}"
    healthy = all(v == "ok" for v in checks.values())
    return jsonify(checks), 200 if healthy else 503
