"""One sign-up, from our form or a form embedded on another site: checks, limits, the answer.

The order matters. Refused input (the honeypot, an address that is not one) is answered before
anything is counted, so it costs the client nothing. Past SUBSCRIBE_RATE_LIMIT accepted
sign-ups from one client address, a sign-up needs a solved proof-of-work challenge instead of
being refused: a room of people behind one address gets in, a script pays for each try.

The browser that signed up keeps a cookie naming the addresses it is waiting to confirm (as
MACs: the cookie tells nothing to whoever reads it), so the link in the mail confirms at once
when it is opened there. The check-inbox page is reached by a redirect and names the address
from the session, never from the URL.
"""

from __future__ import annotations

import base64
import enum
import hashlib
import hmac
import logging
import math
import time
from dataclasses import dataclass, field
from datetime import datetime

import sqlalchemy as sa
from flask import request, session
from itsdangerous import BadSignature, URLSafeTimedSerializer
from werkzeug.wrappers import Response

from newsletter.errors import Invalid
from newsletter.extensions import db, get_redis, settings
from newsletter.models import MAX_EMAIL_LENGTH, utcnow
from newsletter.signing import serializer_keys, signing_keys
from newsletter.subscribers import limits, proof
from newsletter.subscribers.groups import GROUP_FIELD, offer_group, read_group, tag_signup
from newsletter.subscribers.sequence import START_FIRST, start_from_first
from newsletter.subscribers.signup import SubscribeResult, subscribe
from newsletter.subscribers.validate import clean_name, normalize_email
from newsletter.tasks.groups import queue_join_group
from newsletter.tasks.mail import queue_owed_confirmation

HONEYPOT_FIELD = "website"
PROOF_FIELD = "altcha"
FORM_TYPES = ("application/x-www-form-urlencoded", "multipart/form-data")
LIMIT_NAME = "subscribe"

PENDING_COOKIE = "signup_pending"
PENDING_SALT = "newsletter.pending-signup.v1"
PENDING_KEEP = 5  # addresses one browser waits for at once; the oldest make way
_SESSION_KEY = "signup"

log = logging.getLogger(__name__)


class Outcome(enum.Enum):
    ACCEPTED = "accepted"  # stored (or known) and answered "check your inbox"
    IGNORED = "ignored"  # the honeypot was filled: answered as if accepted, nothing kept
    INVALID = "invalid"  # the address or name is not acceptable: say what to fix
    CHALLENGE = "challenge"  # over the limit: solve this proof of work, then send it again


@dataclass
class Signup:
    outcome: Outcome
    email: str = ""
    name: str = ""
    error: Invalid | None = None
    # What was typed (echoed on the form again, unless too long to be a typo).
    typed: dict[str, str] = field(default_factory=dict)
    challenge: dict[str, object] | None = None
    # When the confirmation mail goes (later than now when the domain had its share).
    mail_at: datetime | None = None
    start: bool = False  # "start from the first tip" was ticked
    # The group form's signed hidden field, when it is genuine (carried through a challenge).
    group: str = ""


def _echo(typed: str) -> str:
    return typed if len(typed) <= 300 else ""


def _client() -> str:
    return request.remote_addr or "-"


def handle(source: str) -> Signup:
    """Run one posted sign-up through every check and, if it passes, record it."""
    form = request.form
    if form.get(HONEYPOT_FIELD):
        # A bot filled the field people never see: answer as usual, keep and count nothing.
        bot_email = form.get("email", "").strip().lower()
        shown = bot_email if len(bot_email) <= MAX_EMAIL_LENGTH else ""
        return Signup(Outcome.IGNORED, email=shown)
    found = settings()
    raw_email, raw_name = form.get("email", ""), form.get("name", "")
    # "Start from the first tip": any other value of the field is the box left unticked.
    start_first = form.get("start", "") == START_FIRST
    typed = {"email": _echo(raw_email), "name": _echo(raw_name)}
    if start_first:
        typed["start"] = START_FIRST
    try:
        email = normalize_email(raw_email, check_dns=found.email_check_dns)
        name = clean_name(raw_name)
    except Invalid as exc:
        return Signup(Outcome.INVALID, error=exc, typed=typed)
    group_field = form.get(GROUP_FIELD, "")
    group = _group(group_field)
    limit = found.subscribe_rate_limit
    redis_client = get_redis()
    # One round trip counts this sign-up and says whether it is past the client's allowance.
    if limits.hit(redis_client, LIMIT_NAME, _client(), limit) and not proof.solved(
        redis_client, form.get(PROOF_FIELD, ""), _secrets()
    ):
        return Signup(
            Outcome.CHALLENGE,
            email=email,
            name=name,
            typed={"email": email, "name": name, **({"start": START_FIRST} if start_first else {})},
            challenge=proof.challenge(found.secret_key),
            start=start_first,
            group=group_field if group else "",
        )
    result = _record(email, name, source, group, start_first=start_first)
    queue_owed_confirmation(result)  # never raises for Redis
    return Signup(Outcome.ACCEPTED, email=email, name=name, mail_at=result.mail_later(utcnow()))


def _group(value: str) -> str | None:
    """Return the tag a group form's hidden field names; None (logged) if it is not ours."""
    if not value:
        return None
    found = settings()
    tag = read_group(found.secret_key, found.secret_key_fallbacks, value)
    if tag is None:
        log.warning("sign-up with a group field not signed by us, from %s: ignored", _client())
    return tag


def _record(
    email: str, name: str, source: str, group: str | None = None, *, start_first: bool = False
) -> SubscribeResult:
    try:
        result = subscribe(db.session(), email, name, ip=request.remote_addr, source=source)
        if start_first:
            start_from_first(db.session(), result.subscriber_id)
        db.session.commit()
    except sa.exc.DBAPIError as exc:
        if not exc.connection_invalidated:
            raise
        # The database restarted since this worker's connection was last used: the pool has
        # let go of the dead connections, and a sign-up is safe to try again once.
        db.session.rollback()
        result = subscribe(db.session(), email, name, ip=request.remote_addr, source=source)
        if start_first:
            start_from_first(db.session(), result.subscriber_id)
        db.session.commit()
    if group and result.awaiting:
        # Only a person not confirmed (new, pending, or gone): anyone may type any address,
        # so the tag counts for nothing until that person's own click on the confirmation,
        # as for a new sign-up. A confirmed reader is asked by mail instead (below).
        if tag_signup(db.session(), result.subscriber_id, group):
            db.session.commit()
        else:
            db.session.rollback()
            log.warning(
                "sign-up form for the tag %r, which no longer exists or is one too many for "
                "this person: ignored",
                group,
            )
    elif group:
        # A known reader is mailed a link to join the group: only their mailbox can say yes.
        now = utcnow()
        if offer_group(db.session(), result.subscriber_id, group, now):
            db.session.commit()
            queue_join_group(result.subscriber_id, group, now)
        else:
            db.session.rollback()
    return result


def resend(email: str) -> bool:
    """Ask again for the address this browser signed up; False while the cooldown lasts.

    The cooldown is judged from this browser's own sign-up time, never from the database, so
    the answer cannot tell whether the address is on the list.
    """
    if waiting_seconds() > 0:
        return False
    result = _record(email, "", "form")  # a known address keeps its name: the link carries none
    queue_owed_confirmation(result)
    remember_address(email, result.mail_later(utcnow()))
    return True


def _secrets() -> list[str]:
    found = settings()
    return signing_keys(found.secret_key, found.secret_key_fallbacks)


# --- the check-inbox page's memory (the session) -----------------------------------------------


def remember_address(email: str, mail_at: datetime | None = None) -> None:
    """Keep the address just signed up, for the check-inbox page and its resend button.

    ``mail_at`` is when its confirmation goes, if that is later than now.
    """
    found = {"email": email, "at": int(time.time())}
    if mail_at is not None:
        found["mail_at"] = math.ceil(mail_at.timestamp())
    session[_SESSION_KEY] = found


def remembered_address() -> str:
    """Return the address this browser last signed up, or ''."""
    found = session.get(_SESSION_KEY)
    return str(found.get("email", "")) if isinstance(found, dict) else ""


def waiting_seconds() -> int:
    """Return how long until this browser may ask for the confirmation mail again."""
    found = session.get(_SESSION_KEY)
    at = found.get("at") if isinstance(found, dict) else None
    if not isinstance(at, int):
        return 0
    cooldown = int(limits.CONFIRM_COOLDOWN.total_seconds())
    return max(0, at + cooldown - int(time.time()))


def mail_minutes(mail_at: float | None = None) -> int:
    """Return within how many minutes at most the confirmation mail goes; 0 if it went already.

    A mail owed later is sent by the reconciler, which looks every RECONCILE_INTERVAL and
    leaves a mail one interval old to the request that owes it: both are counted in.
    """
    if mail_at is None:
        found = session.get(_SESSION_KEY)
        at = found.get("mail_at") if isinstance(found, dict) else None
        if not isinstance(at, int):
            return 0
        mail_at = at
    left = mail_at - time.time()
    if left <= 0:
        return 0
    return math.ceil((left + 2 * settings().reconcile_interval) / 60)


def forget_address() -> None:
    """Drop the remembered address ("wrong address?")."""
    session.pop(_SESSION_KEY, None)


# --- one-click confirm: the pending cookie ----------------------------------------------------


def _serializer() -> URLSafeTimedSerializer:
    found = settings()
    keys = serializer_keys(found.secret_key, found.secret_key_fallbacks)
    return URLSafeTimedSerializer(keys, salt=PENDING_SALT)


def _mark(email: str) -> str:
    # A MAC of the address under the app's key: opaque to whoever reads the cookie, and the
    # same for a new address and a known one.
    key = hashlib.sha256(f"{PENDING_SALT}:{settings().secret_key}".encode()).digest()
    digest = hmac.new(key, email.encode(), hashlib.sha256).digest()[:16]
    return base64.urlsafe_b64encode(digest).decode().rstrip("=")


def _marks() -> list[str]:
    raw = request.cookies.get(PENDING_COOKIE, "")
    if not raw or len(raw) > 1000:
        return []
    try:
        marks = _serializer().loads(raw, max_age=settings().confirm_max_age)
    except (BadSignature, ValueError, TypeError):
        return []
    return [m for m in marks if isinstance(m, str)] if isinstance(marks, list) else []


def _set_marks(response: Response, marks: list[str]) -> None:
    found = settings()
    if not marks:
        response.delete_cookie(PENDING_COOKIE, path="/confirm")
        return
    response.set_cookie(
        PENDING_COOKIE,
        _serializer().dumps(marks[-PENDING_KEEP:]),
        max_age=found.confirm_max_age,
        path="/confirm",
        secure=found.base_url.startswith("https://"),
        httponly=True,
        samesite="Lax",  # sent when the reader opens the link in the mail: a top-level GET
    )


def remember_pending(response: Response, email: str) -> None:
    """Let this browser confirm ``email`` with one click on the link in the mail."""
    mark = _mark(email)
    _set_marks(response, [m for m in _marks() if m != mark] + [mark])


def is_pending_here(email: str) -> bool:
    """Say whether this browser signed up ``email`` (and may confirm it on a GET)."""
    mark = _mark(email)
    return any(hmac.compare_digest(mark, m) for m in _marks())


def forget_pending(response: Response, email: str) -> None:
    """Stop treating ``email`` as waiting in this browser (it is confirmed now)."""
    mark = _mark(email)
    _set_marks(response, [m for m in _marks() if m != mark])
