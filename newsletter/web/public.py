"""What a reader touches: the front page, subscribe, confirm, the check-inbox page, health.

Thin views: parse the request, call one function of ``signup`` or ``state``, render a page.
Token-authenticated POSTs (confirm, resend) need no CSRF token and no cookie: the signed token
in the URL is the proof. Leaving and the reader's own page are in ``manage``.
"""

from __future__ import annotations

import logging
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote

from flask import (
    Blueprint,
    Flask,
    Response,
    flash,
    make_response,
    redirect,
    request,
)
from flask_babel import gettext as _
from flask_wtf.csrf import CSRFError
from werkzeug.wrappers import Response as WerkzeugResponse

from newsletter.archive import listing
from newsletter.errors import Invalid
from newsletter.extensions import csrf, db, settings
from newsletter.models import (
    MAX_EMAIL_LENGTH,
    Issue,
    Subscriber,
    SubscriberStatus,
    utcnow,
)
from newsletter.services import tokens
from newsletter.subscribers import limits
from newsletter.subscribers.links import ConfirmClaim, TokenError, TokenExpired
from newsletter.subscribers.signup import SubscribeResult, reserve_confirmation
from newsletter.subscribers.state import CONFIRMABLE, ConfirmOutcome, confirm
from newsletter.tasks.evergreen import queue_first_tip
from newsletter.tasks.mail import queue_owed_confirmation, queue_welcome
from newsletter.web import signup
from newsletter.web.health import healthz_answer
from newsletter.web.pages import MAX_TOKEN, bad_link, page

log = logging.getLogger(__name__)

bp = Blueprint("public", __name__)

LATEST_TIPS = 5
SOLVER = Path(__file__).parent / "assets" / "proof-of-work.js"
# The one page that runs a script: ours, from this host, nothing inline.
CHALLENGE_POLICY = (
    "default-src 'none'; script-src 'self'; img-src * data:; style-src 'unsafe-inline'; "
    "form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
)


def register(app: Flask) -> None:
    """Attach the reader's pages to the app."""
    app.register_blueprint(bp)


# --- helpers ---------------------------------------------------------------------------------


def _latest_tips() -> list[tuple[Issue, datetime]]:
    # The back catalogue too: a newsletter that starts from a blog shows its tips at once.
    return listing.latest(db.session(), LATEST_TIPS)


def front_page(status: int = 200, error: Invalid | None = None, **form: str) -> tuple[str, int]:
    """Render the front page, its form filled in with ``form`` and ``error`` beside it."""
    return page("public/index.html", status, tips=_latest_tips(), error=error, form=form)


def _confirm_claim(token: str) -> ConfirmClaim:
    if len(token) > MAX_TOKEN:
        raise TokenError("too long")
    return tokens().read_confirm(token, settings().confirm_max_age)


def _confirm_claim_or_page(token: str) -> ConfirmClaim | tuple[str, int]:
    """Read a confirm token, or return the page that says why it cannot be used."""
    try:
        return _confirm_claim(token)
    except TokenExpired:
        return page("public/confirm_expired.html", 410, token=token)
    except TokenError:
        return bad_link()


def challenge_page(answer: signup.Signup, action: str) -> Response:
    """Ask the browser to solve a proof of work, then send the same sign-up to ``action``."""
    html, status = page(
        "public/challenge.html",
        challenge=answer.challenge,
        action=action,
        email=answer.email,
        name=answer.name,
        start=answer.start,
        group=answer.group,
        minutes=max(1, limits.retry_after(settings().subscribe_rate_limit) // 60),
    )
    response = make_response(html, status)
    response.headers["Content-Security-Policy"] = CHALLENGE_POLICY
    response.headers["Cache-Control"] = "no-store"
    return response


def accepted(answer: signup.Signup) -> WerkzeugResponse:
    """Send the browser on to the check-inbox page, able to confirm in one click."""
    response = redirect("/check-inbox", 303)
    # A bot that filled the honeypot is answered the same way, to learn nothing from it.
    signup.remember_address(answer.email, answer.mail_at)
    signup.remember_pending(response, answer.email)
    return response


@bp.errorhandler(CSRFError)
def csrf_failed(exc: CSRFError) -> tuple[str, int]:
    return page("public/form_expired.html", 400)


# --- the front page and subscribing -----------------------------------------------------------


@bp.get("/")
def index() -> tuple[str, int]:
    """Show what the newsletter is, the subscribe form and the latest tips."""
    email = request.args.get("email", "")
    return front_page(email=email if len(email) <= MAX_EMAIL_LENGTH else "")


@bp.post("/subscribe")
def subscribe_view() -> Any:
    """Record a sign-up; answer the same whatever happened, by a redirect to check-inbox."""
    if request.mimetype not in signup.FORM_TYPES:
        return page("public/form_expired.html", 415, wrong_type=True)
    answer = signup.handle("form")
    if answer.outcome is signup.Outcome.INVALID:
        return front_page(400, answer.error, **answer.typed)
    if answer.outcome is signup.Outcome.CHALLENGE:
        return challenge_page(answer, "/subscribe")
    return accepted(answer)


@bp.get("/check-inbox")
def check_inbox() -> tuple[str, int]:
    """Say where the confirmation went, with "wrong address?" and "send it again"."""
    return page(
        "public/check_inbox.html",
        email=signup.remembered_address(),
        wait_minutes=-(-signup.waiting_seconds() // 60),
        mail_minutes=signup.mail_minutes(),
    )


@bp.post("/check-inbox/resend")
def check_inbox_resend() -> Any:
    """Send the confirmation again to the address this browser signed up."""
    email = signup.remembered_address()
    if not email:
        return redirect("/check-inbox", 303)
    if signup.resend(email):
        flash(_("We sent the link again."))
    else:
        flash(_("The link is on its way; you can ask again in a few minutes."))
    return redirect("/check-inbox", 303)


@bp.post("/check-inbox/change")
def check_inbox_change() -> Any:
    """Forget the address typed (it was wrong) and go back to the form, filled in."""
    email = signup.remembered_address()
    signup.forget_address()
    return redirect(f"/?email={quote(email)}#subscribe" if email else "/#subscribe", 303)


@bp.get("/proof-of-work.js")
def proof_of_work_script() -> Response:
    """Serve the script that solves the sign-up's proof-of-work challenge."""
    response = make_response(SOLVER.read_bytes())
    response.mimetype = "text/javascript"
    response.headers["Cache-Control"] = "public, max-age=3600"
    return response


# --- confirming --------------------------------------------------------------------------------


def _welcome(subscriber_id: int) -> tuple[str, int]:
    sub = db.session.get(Subscriber, subscriber_id)
    manage = f"/manage/{tokens().manage_token(sub.id, sub.created_at, sub.email)}" if sub else ""
    return page("public/welcome.html", manage_url=manage)


@bp.get("/confirm/<token>")
def confirm_page(token: str) -> Any:
    """Confirm at once in the browser that signed up; elsewhere show one button.

    Mail scanners fetch every link without that browser's cookie: for them a GET changes
    nothing.
    """
    claim = _confirm_claim_or_page(token)
    if not isinstance(claim, ConfirmClaim):
        return claim
    sub = db.session.get(Subscriber, claim.subscriber_id)
    if sub is None:
        return bad_link(404, "unknown")
    if sub.status is SubscriberStatus.CONFIRMED:
        return page("public/confirm.html", already=True, token=token)
    if sub.status not in CONFIRMABLE or sub.version != claim.version:
        return bad_link(400, "stale", token=token)
    if not signup.is_pending_here(sub.email):
        return page("public/confirm.html", already=False, token=token)
    email = sub.email
    outcome = _confirm(claim)
    if outcome is not ConfirmOutcome.CONFIRMED:
        return page("public/confirm.html", already=outcome is ConfirmOutcome.ALREADY, token=token)
    response = make_response(_welcome(claim.subscriber_id))
    signup.forget_pending(response, email)
    return response


def _confirm(claim: ConfirmClaim) -> ConfirmOutcome:
    now = utcnow()
    outcome = confirm(
        db.session(),
        claim.subscriber_id,
        claim.version,
        name=claim.name,
        ip=request.remote_addr,
        now=now,
    )
    sub = db.session.get(Subscriber, claim.subscriber_id)
    due = sub.evergreen_due_at if sub is not None else None  # set by confirming, if in it
    db.session.commit()
    if outcome is ConfirmOutcome.CONFIRMED:
        queue_welcome(claim.subscriber_id, now)
        queue_first_tip(claim.subscriber_id, due)  # "start from the first tip": it comes now
    return outcome


@bp.post("/confirm/<token>")
@csrf.exempt
def confirm_submit(token: str) -> tuple[str, int]:
    """Confirm the subscription the token names, then queue the welcome mail."""
    claim = _confirm_claim_or_page(token)
    if not isinstance(claim, ConfirmClaim):
        return claim
    outcome = _confirm(claim)
    if outcome is ConfirmOutcome.UNKNOWN:
        return bad_link(404, "unknown")
    if outcome is ConfirmOutcome.STALE:
        return bad_link(400, "stale", token=token)
    return _welcome(claim.subscriber_id)


@bp.post("/confirm/resend")
@csrf.exempt
def confirm_resend() -> tuple[str, int]:
    """Send a fresh confirmation link to whoever an (expired or old) confirm token names."""
    token = request.form.get("token", "")
    claim: ConfirmClaim | None
    try:
        claim = _confirm_claim(token)
    except TokenExpired as exc:
        claim = exc.claim
    except TokenError:
        return bad_link()
    sub = db.session.get(Subscriber, claim.subscriber_id) if claim is not None else None
    # The token is ours, so it was mailed to this address: asking for a fresh one mails only
    # that inbox again, within its limits, whatever happened to the old link since.
    minutes = 0
    if claim is not None and sub is not None and sub.status in CONFIRMABLE:
        sid, email, now = sub.id, sub.email, utcnow()
        due = reserve_confirmation(
            db.session(), sid, email, now, name=claim.name, since=_left_at(sub)
        )
        mail_at = due if due is not None else limits.domain_due(db.session(), email, now)
        db.session.commit()
        result = SubscribeResult(sid, due is not None, due, mail_at)
        queue_owed_confirmation(result)
        later = result.mail_later(utcnow())
        minutes = signup.mail_minutes(later.timestamp()) if later else 0
    # The same answer whatever happened: the page must not tell who is on the list.
    return page(
        "public/check_inbox.html", email="", resent=True, wait_minutes=0, mail_minutes=minutes
    )


def _left_at(sub: Subscriber) -> datetime | None:
    return sub.unsubscribed_at if sub.status is SubscriberStatus.UNSUBSCRIBED else None


# --- the rest ----------------------------------------------------------------------------------


@bp.get("/safe-sender")
def safe_sender() -> tuple[str, int]:
    """Explain, per mail provider, how to keep the tips out of spam."""
    return page("public/safe_sender.html")


@bp.get("/healthz")
def healthz() -> Any:
    """Answer 200 when the database and Redis both answer, else 503 naming the one that failed."""
    return healthz_answer()
