"""The editor's subscriber pages: the list, search and filters, a person's page, erase, export."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

import sqlalchemy as sa
from flask import (
    Blueprint,
    Flask,
    Response,
    abort,
    flash,
    redirect,
    render_template,
    request,
    stream_with_context,
    url_for,
)

from newsletter.auth.sessions import current_editor, login_required
from newsletter.bounces import listing
from newsletter.errors import NewsletterError
from newsletter.extensions import db
from newsletter.models import (
    Delivery,
    Issue,
    Subscriber,
    SubscriberEvent,
    SubscriberStatus,
    utcnow,
)
from newsletter.subscribers import search
from newsletter.subscribers.editing import (
    EDITOR_STATUSES,
    add_person,
    change_status,
    clean_reason,
    edit_person,
    resend_confirmation,
)
from newsletter.subscribers.export import csv_lines
from newsletter.subscribers.state import erase
from newsletter.subscribers.tags import parse_tags, tag_names
from newsletter.subscribers.validate import clean_name, normalize_email
from newsletter.tasks.mail import queue_confirmation
from newsletter.web import row_id

NO_SUBSCRIBER = "No subscriber with that number (they may have been erased)."

bp = Blueprint("subscribers", __name__, url_prefix="/editor")

PAGE_SIZE = 50
MAX_SEARCH = 100
STATUSES = [s.value for s in SubscriberStatus]


def register(app: Flask) -> None:
    """Attach these pages to the app."""
    app.register_blueprint(bp)


def _filters() -> tuple[str, str]:
    q = (request.args.get("q") or "").strip()[:MAX_SEARCH]
    status = request.args.get("status") or ""
    if "\0" in q:
        abort(400, "The search may not contain a NUL character.")
    if status and status not in STATUSES:
        abort(400, "Unknown status; choose pending, confirmed, unsubscribed or bounced.")
    return q, status


def _cursor(name: str) -> int | None:
    raw = request.args.get(name)
    if raw in (None, ""):
        return None
    cursor = row_id(raw)
    if cursor is None:
        abort(400, "That page link is broken; go back to the first page.")
    return cursor


def status_counts() -> dict[str, int]:
    """Return subscribers per status (kept by the database: cheap and always current)."""
    return search.status_counts(db.session())


@bp.get("/subscribers")
@login_required
def subscribers() -> Any:
    """List subscribers, newest first, a page at a time by id (keyset, no OFFSET)."""
    q, status = _filters()
    after, before = _cursor("after"), _cursor("before")
    rows = search.page(db.session(), q, status, after=after, before=before, limit=PAGE_SIZE + 1)
    if before is not None:
        has_newer = len(rows) > PAGE_SIZE
        rows = list(reversed(rows[:PAGE_SIZE]))
        has_older = True
    else:
        has_older = len(rows) > PAGE_SIZE
        rows = rows[:PAGE_SIZE]
        has_newer = after is not None
    base = {k: v for k, v in (("q", q), ("status", status)) if v}
    older_url = f"?{urlencode({**base, 'after': rows[-1].id})}" if rows and has_older else None
    newer_url = f"?{urlencode({**base, 'before': rows[0].id})}" if rows and has_newer else None
    return render_template(
        "editor/subscribers.html",
        rows=rows,
        q=q,
        status=status,
        statuses=STATUSES,
        counts=status_counts(),
        older_url=older_url,
        newer_url=newer_url,
        export_url=url_for("subscribers.export") + (f"?{urlencode(base)}" if base else ""),
    )


@bp.get("/subscribers/export.csv")
@login_required
def export() -> Response:
    """Stream the subscribers that match the current filter as CSV."""
    q, status = _filters()
    lines = csv_lines(status=status or None, search=q or None)
    stamp = utcnow().strftime("%Y%m%d-%H%M")
    return Response(
        stream_with_context(lines),
        mimetype="text/csv",
        headers={"Content-Disposition": f'attachment; filename="subscribers-{stamp}.csv"'},
    )


@bp.get("/subscribers/<id:subscriber_id>")
@login_required
def subscriber(subscriber_id: int) -> Any:
    """Show one person: their status, history and every delivery."""
    sub = db.get_or_404(
        Subscriber,
        subscriber_id,
        description="No subscriber with that number (they may have been erased).",
    )
    events = db.session.scalars(
        sa.select(SubscriberEvent)
        .where(SubscriberEvent.subscriber_id == sub.id)
        .order_by(SubscriberEvent.at, SubscriberEvent.id)
    ).all()
    deliveries = db.session.execute(
        sa.select(Delivery, Issue.subject)
        .join(Issue, Issue.id == Delivery.issue_id)
        .where(Delivery.subscriber_id == sub.id)
        .order_by(Delivery.id.desc())
        .limit(500)
    ).all()
    bounced = listing.recent(db.session(), subscriber_id=sub.id, limit=100)
    return render_template(
        "editor/subscriber.html",
        sub=sub,
        events=events,
        deliveries=deliveries,
        bounces=bounced,
        tags=tag_names(db.session(), [sub.id])[sub.id],
        statuses=[s.value for s in EDITOR_STATUSES],
    )


def _by() -> str:
    editor = current_editor()
    return f"editor {editor.email}" if editor else "an editor"


@bp.route("/subscribers/new", methods=["GET", "POST"])
@login_required
def new_subscriber() -> Any:
    """Add one person by hand: mail them the confirmation, or confirm them with a reason."""
    form = request.form
    if request.method == "GET":
        return render_template("editor/subscriber_new.html", form={}, error=None)
    try:
        if form.get("mode") not in ("confirm", "confirmed"):
            raise NewsletterError(
                "Choose whether to mail the confirmation or to mark them confirmed."
            )
        email = normalize_email(form.get("email"))
        name = clean_name(form.get("name", ""))
        tags = parse_tags(form.get("tags", ""))
        reason = clean_reason(form.get("reason")) if form.get("mode") == "confirmed" else None
        sub, due = add_person(db.session(), email, name, tags, reason=reason, by=_by())
        db.session.commit()
    except NewsletterError as exc:
        db.session.rollback()
        page = render_template("editor/subscriber_new.html", form=form, error=exc.message)
        return page, exc.status if exc.status != 422 else 400
    if due is not None:
        queue_confirmation(sub.id, due)  # Redis down: the reconciler queues it
        flash(f"{email} was added; a confirmation mail is on its way.")
    elif reason is not None:
        flash(f"{email} was added as confirmed.")
    else:
        flash(f"{email} was added; the limits held back the confirmation mail for now.")
    return redirect(url_for("subscribers.subscriber", subscriber_id=sub.id))


def _act(subscriber_id: int, done: str, action: Any) -> Any:
    """Run one change to a person, commit, and go back to their page saying how it went."""
    db.get_or_404(Subscriber, subscriber_id, description=NO_SUBSCRIBER)
    try:
        result = action()
        db.session.commit()
    except NewsletterError as exc:
        db.session.rollback()
        flash(exc.message, "error")
    else:
        flash(done if result is not False else "Nothing changed.")
    return redirect(url_for("subscribers.subscriber", subscriber_id=subscriber_id))


@bp.post("/subscribers/<id:subscriber_id>/edit")
@login_required
def edit_subscriber(subscriber_id: int) -> Any:
    """Change a person's name and tags."""

    def act() -> object:
        name = clean_name(request.form.get("name", ""))
        tags = parse_tags(request.form.get("tags", ""))
        return edit_person(db.session(), subscriber_id, name=name, tags=tags, by=_by())

    return _act(subscriber_id, "Saved.", act)


@bp.post("/subscribers/<id:subscriber_id>/resend")
@login_required
def resend(subscriber_id: int) -> Any:
    """Mail the confirmation link again, within the sign-up form's limits."""
    due = None

    def act() -> object:
        nonlocal due
        due = resend_confirmation(db.session(), subscriber_id)
        return True

    answer = _act(subscriber_id, "The confirmation mail is on its way again.", act)
    if due is not None:
        queue_confirmation(subscriber_id, due)
    return answer


@bp.post("/subscribers/<id:subscriber_id>/status")
@login_required
def set_status(subscriber_id: int) -> Any:
    """Change a person's status (confirmed only with a reason; never back from unsubscribed)."""
    target = request.form.get("status", "")

    def act() -> object:
        return change_status(
            db.session(), subscriber_id, target, reason=request.form.get("reason"), by=_by()
        )

    return _act(subscriber_id, f"The status is now {target}.", act)


@bp.route("/subscribers/<id:subscriber_id>/erase", methods=["GET", "POST"])
@login_required
def erase_subscriber(subscriber_id: int) -> Any:
    """Ask, then erase a person: every row with their address or name."""
    sub = db.get_or_404(
        Subscriber,
        subscriber_id,
        description="No subscriber with that number (they may have been erased).",
    )
    if request.method == "GET":
        return render_template("editor/subscriber_erase.html", sub=sub)
    if request.form.get("confirm_email", "").strip().lower() != sub.email:
        flash("Type the address exactly to confirm the erasure.", "error")
        return render_template("editor/subscriber_erase.html", sub=sub), 400
    email = sub.email
    erase(db.session(), email)
    db.session.commit()
    flash(f"{email} was erased: no row holds their address or name any more.")
    return redirect(url_for("subscribers.subscribers"))
