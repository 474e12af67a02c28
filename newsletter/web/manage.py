"""The reader's own page (/manage/<token>) and leaving (/unsubscribe/<token>).

Thin views: read the token, call one function of ``subscribers.manage``, render or redirect.
Changes on the reader's page are POSTs from its own forms, with CSRF tokens. The link in every
mail opens the harmless actions (name, pause, leave); data, address change and erasing need a
link freshly mailed to the current address (``Access.FRESH``), asked for on the page itself.
The unsubscribe POST needs neither a CSRF token nor a cookie: mail providers' one-click
unsubscribe (RFC 8058) has neither, and the signed token in the URL is the proof. The
unsubscribe page does no more than that: it leads nowhere near the reader's page.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import datetime
from typing import Any, TypeVar

from flask import (
    Blueprint,
    Flask,
    Response,
    flash,
    redirect,
    request,
    url_for,
)
from flask_babel import gettext as _
from flask_wtf.csrf import CSRFError
from werkzeug.wrappers import Response as WerkzeugResponse

from newsletter.delivery.sequence_choice import tips_in_sequence
from newsletter.errors import Conflict, Invalid, NewsletterError
from newsletter.extensions import csrf, db, settings
from newsletter.i18n import format_date
from newsletter.models import Subscriber, SubscriberStatus, utcnow
from newsletter.services import tokens
from newsletter.subscribers import manage, sequence
from newsletter.subscribers.links import (
    ACCESS_MAX_AGE,
    Access,
    AddressClaim,
    TokenError,
    TokenExpired,
)
from newsletter.subscribers.signup import subscribe
from newsletter.tasks.evergreen import queue_first_tip
from newsletter.tasks.mail import queue_owed_confirmation
from newsletter.tasks.manage import (
    queue_access_link,
    queue_address_confirmation,
    queue_address_notice,
)
from newsletter.web.pages import MAX_TOKEN, bad_link, page

T = TypeVar("T")

bp = Blueprint("manage", __name__)

# What a form field may echo back after an error; anything longer is no typo.
ECHO_LIMIT = 300
DEFAULT_PAUSE_WEEKS = 4


def register(app: Flask) -> None:
    """Attach the reader's own page and the unsubscribe pages to the app."""
    app.register_blueprint(bp)


class _NoReader(Exception):
    """The link names nobody we can act for: a bad, stale or erased reader's token."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status, self.reason = status, reason


@bp.errorhandler(_NoReader)
def no_reader(exc: _NoReader) -> tuple[str, int]:
    return bad_link(exc.status, exc.reason)


@bp.errorhandler(CSRFError)
def csrf_failed(exc: CSRFError) -> tuple[str, int]:
    return page("public/form_expired.html", 400)


@bp.after_request
def private(response: Response) -> Response:
    # Every page here shows a reader's address or acts for them: no cache keeps a copy.
    response.headers["Cache-Control"] = "no-store"
    return response


def _read(token: str, read: Callable[[str], T]) -> T:
    if len(token) > MAX_TOKEN:
        raise _NoReader(400, "invalid")
    try:
        return read(token)
    except TokenError:
        raise _NoReader(400, "invalid") from None


def _reader(subscriber_id: int) -> Subscriber:
    sub = manage.reader(db.session(), subscriber_id, lock=request.method == "POST")
    if sub is None:
        raise _NoReader(404, "unknown")
    return sub


def _manage_reader(token: str) -> tuple[Subscriber, Access]:
    claim = _read(token, tokens().read_manage)
    sub = _reader(claim.subscriber_id)
    access = claim.access(sub)
    if access is not None and claim.legacy and manage.address_changed(db.session(), sub):
        access = None  # a link mailed before links named the address, to an address since left
    if access is None:
        # Another row with this id, another address since, or a forgery: show nothing.
        raise _NoReader(404, "gone")
    return sub, access


class _NeedsLink(Exception):
    """A sensitive action through an ordinary link: the page offers to mail a fresh one."""

    def __init__(self, sub: Subscriber, token: str, access: Access) -> None:
        super().__init__("needs a mailed link")
        self.sub, self.token, self.access = sub, token, access


@bp.errorhandler(_NeedsLink)
def needs_link(exc: _NeedsLink) -> tuple[str, int]:
    db.session.rollback()
    return _manage(exc.sub, exc.token, exc.access, 403, needs_link=True)


def _fresh_reader(token: str) -> tuple[Subscriber, Access]:
    """Return the reader for a sensitive action; raise _NeedsLink without a fresh link."""
    sub, access = _manage_reader(token)
    if access is not Access.FRESH:
        raise _NeedsLink(sub, token, access)
    return sub, access


def _unsubscribe_reader(token: str) -> Subscriber:
    return _reader(_read(token, tokens().read_unsubscribe))


def _echo(typed: str) -> str:
    return typed if len(typed) <= ECHO_LIMIT else ""


def _back(token: str, message: str) -> WerkzeugResponse:
    flash(message)
    return redirect(url_for("manage.manage_page", token=token), 303)


# --- the reader's own page ---------------------------------------------------------------------


def _manage(
    sub: Subscriber,
    token: str,
    access: Access,
    status: int = 200,
    error: NewsletterError | None = None,
    *,
    needs_link: bool = False,
    typed: dict[str, str] | None = None,
) -> tuple[str, int]:
    return page(
        "public/manage.html",
        status,
        sub=sub,
        token=token,
        fresh=access is Access.FRESH,
        needs_link=needs_link,
        link_minutes=ACCESS_MAX_AGE // 60,
        paused_until=manage.paused_until(sub, utcnow()),
        subscribed=sub.status is SubscriberStatus.CONFIRMED,
        unsubscribe_token=tokens().unsubscribe_token(sub.id),
        weeks=manage.PAUSE_WEEKS,
        paces=_paces(),
        pace=sequence.pace_name(sub),
        sequence_total=tips_in_sequence(db.session()) if sub.evergreen else 0,
        default_weeks=DEFAULT_PAUSE_WEEKS,
        error=error,
        typed=typed or {},
    )


def _refused(
    sub: Subscriber, token: str, access: Access, exc: NewsletterError, **typed: str
) -> tuple[str, int]:
    db.session.rollback()
    status = 409 if isinstance(exc, Conflict) else 400
    return _manage(sub, token, access, status, exc, typed=typed)


@bp.get("/manage/<token>")
def manage_page(token: str) -> tuple[str, int]:
    """Show the reader what we hold and what they can change; change nothing."""
    sub, access = _manage_reader(token)
    return _manage(sub, token, access)


@bp.post("/manage/<token>/link")
def mail_link(token: str) -> Any:
    """Mail the current address a link opening every action; the same answer when limited."""
    sub, _access = _manage_reader(token)
    due = manage.request_access_link(db.session(), sub)
    db.session.commit()
    if due is not None:
        queue_access_link(sub.id, due)
    return _back(
        token,
        _(
            "We sent a link to your address. Open it within %(minutes)s minutes to download "
            "your data, change your address or erase your subscription.",
            minutes=ACCESS_MAX_AGE // 60,
        ),
    )


@bp.post("/manage/<token>/name")
def rename(token: str) -> Any:
    """Save the name the reader typed."""
    sub, access = _manage_reader(token)
    raw = request.form.get("name", "")
    try:
        manage.rename(db.session(), sub, raw)
    except Invalid as exc:
        return _refused(sub, token, access, exc, name=_echo(raw))
    db.session.commit()
    return _back(token, _("Your name is saved."))


@bp.post("/manage/<token>/address")
def change_address(token: str) -> Any:
    """Mail a link to the new address; the same answer whether or not it is on the list."""
    sub, access = _fresh_reader(token)
    raw = request.form.get("email", "")
    try:
        asked = manage.request_address_change(
            db.session(), sub, raw, check_dns=settings().email_check_dns
        )
    except Invalid as exc:
        return _refused(sub, token, access, exc, email=_echo(raw))
    db.session.commit()
    if asked.due_at is not None:
        queue_address_confirmation(asked.subscriber_id, asked.due_at)
    return page("public/manage_address.html", state="asked", token=token)


@bp.post("/manage/<token>/pause")
def pause(token: str) -> Any:
    """Pause the tips for the weeks the reader chose."""
    sub, access = _manage_reader(token)
    try:
        until = manage.pause(db.session(), sub, manage.parse_weeks(request.form.get("weeks")))
    except (Invalid, Conflict) as exc:
        return _refused(sub, token, access, exc)
    db.session.commit()
    return _back(token, _("Paused. The tips start again on %(day)s.", day=_day(until)))


@bp.post("/manage/<token>/resume")
def resume(token: str) -> Any:
    """End the reader's pause now."""
    sub, _access = _manage_reader(token)
    manage.resume(db.session(), sub)
    db.session.commit()
    return _back(token, _("Welcome back: the next tip comes to you as usual."))


def _paces() -> list[tuple[str, str]]:
    every = settings().evergreen_interval
    named = {
        "daily": _("Every day"),
        "twice-weekly": _("Twice a week"),
        "weekly": _("Every week"),
    }
    choices = list(named.items())
    if every not in sequence.PACES.values():  # the newsletter's own pace is none of those
        choices.insert(0, (sequence.DEFAULT_PACE, _("The newsletter's pace")))
    return choices


@bp.post("/manage/<token>/sequence")
def sequence_choice(token: str) -> Any:
    """Join or leave the evergreen sequence, or set its pace."""
    sub, access = _manage_reader(token)
    action = request.form.get("action", "")
    if action == "join":
        sequence.join(sub)
        message = _("The earlier tips are on their way, one at a time.")
    elif action == "leave":
        sequence.leave(sub)
        message = _("No more earlier tips. New tips still come as usual.")
    else:
        try:
            sequence.set_pace(sub, request.form.get("pace", ""), settings().evergreen_interval)
        except Invalid as exc:
            return _refused(sub, token, access, exc)
        message = _("Your pace is saved.")
    due = sub.evergreen_due_at if action == "join" else None
    db.session.commit()
    queue_first_tip(sub.id, due)  # the next tip now, not at the next tick
    return _back(token, message)


@bp.post("/manage/<token>/data")
def download(token: str) -> Response:
    """Hand the reader everything stored about them, as a JSON file."""
    sub, _access = _fresh_reader(token)
    data = manage.export(db.session(), sub)
    db.session.commit()
    body = json.dumps(data, ensure_ascii=False, indent=2) + "\n"
    return Response(
        body,
        mimetype="application/json",
        headers={"Content-Disposition": 'attachment; filename="my-subscription-data.json"'},
    )


@bp.post("/manage/<token>/erase")
def erase(token: str) -> Any:
    """Erase the reader, once they typed their own address to say they mean it."""
    sub, access = _fresh_reader(token)
    try:
        manage.erase_reader(db.session(), sub, request.form.get("email", ""))
    except Invalid as exc:
        return _refused(sub, token, access, exc)
    db.session.commit()
    return page("public/erased.html")


def _day(value: datetime) -> str:
    return format_date(value, settings().language)


# --- confirming a new address ------------------------------------------------------------------


def _address_claim(token: str) -> AddressClaim | None:
    """Return what an address link claims, None once it expired; a bad one is no reader's."""
    if len(token) > MAX_TOKEN:
        raise _NoReader(400, "invalid")
    try:
        return tokens().read_address(token, settings().confirm_max_age)
    except TokenExpired:
        return None
    except TokenError:
        raise _NoReader(400, "invalid") from None


def _address_answer(outcome: manage.AddressOutcome | None, claim: AddressClaim) -> tuple[str, int]:
    o = manage.AddressOutcome
    if outcome is o.UNKNOWN:
        return bad_link(404, "unknown")
    if outcome is o.STALE:
        return page("public/manage_address.html", 400, state="stale")
    if outcome is o.TAKEN:
        return page("public/manage_address.html", 409, state="taken", email=claim.email)
    return page("public/manage_address.html", state="changed", email=claim.email)


@bp.get("/manage/address/<token>")
def address_page(token: str) -> tuple[str, int]:
    """Show one button that makes the new address the reader's; change nothing."""
    claim = _address_claim(token)
    if claim is None:
        return page("public/manage_address.html", 410, state="expired")
    state = manage.address_link_state(db.session(), claim)
    db.session.commit()
    if state is not None:
        return _address_answer(state, claim)
    return page("public/manage_address.html", state="confirm", email=claim.email, token=token)


@bp.post("/manage/address/<token>")
def address_submit(token: str) -> tuple[str, int]:
    """Make the new address the reader's, then tell the old one."""
    claim = _address_claim(token)
    if claim is None:
        return page("public/manage_address.html", 410, state="expired")
    change = manage.confirm_address_change(db.session(), claim, ip=request.remote_addr)
    db.session.commit()
    if change.notice_due_at is not None:
        queue_address_notice(claim.subscriber_id, change.notice_due_at)
    return _address_answer(change.outcome, claim)


# --- leaving -------------------------------------------------------------------------------------


def _leave_page(sub: Subscriber, token: str) -> tuple[str, int]:
    return page(
        "public/unsubscribe.html",
        token=token,
        state=sub.status.value,
        paused_until=manage.paused_until(sub, utcnow()),
        reasons=list(manage.Reason),
    )


@bp.get("/unsubscribe/<token>")
def unsubscribe_page(token: str) -> tuple[str, int]:
    """Show the one unsubscribe button, an optional reason, a way to pause; change nothing."""
    return _leave_page(_unsubscribe_reader(token), token)


@bp.post("/unsubscribe/<token>")
@csrf.exempt
def unsubscribe_submit(token: str) -> tuple[str, int]:
    """Unsubscribe at once (also RFC 8058 one-click); answer 200 with a page, never a redirect."""
    subscriber_id = _read(token, tokens().read_unsubscribe)
    one_click = request.form.get("List-Unsubscribe") == "One-Click"
    sub = manage.unsubscribe(
        db.session(),
        subscriber_id,
        reason=manage.parse_reason(request.form.get("reason")),
        ip=request.remote_addr,
        detail="one-click" if one_click else "page",
    )
    db.session.commit()
    return page("public/unsubscribed.html", token=token, erased=sub is None)


@bp.post("/resubscribe/<token>")
@csrf.exempt
def resubscribe(token: str) -> tuple[str, int]:
    """Put an unsubscribed reader back on the way in: through confirmation again."""
    sub = _unsubscribe_reader(token)
    result = subscribe(db.session(), sub.email, ip=request.remote_addr, source="resubscribe")
    db.session.commit()
    queue_owed_confirmation(result)
    return page("public/check_inbox.html")
