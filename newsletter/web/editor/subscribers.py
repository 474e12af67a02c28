"""The editor's subscriber pages: the list, search and filters, a person's page, erase, export."""

from __future__ import annotations

from datetime import timedelta
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
from newsletter.delivery.sequence_choice import tips_in_sequence
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
from newsletter.subscribers import bulk_jobs, search
from newsletter.subscribers.bulk import (
    Filter,
    count_matching,
    tag_all,
    untag_all,
)
from newsletter.subscribers.bulk_jobs import BulkAction, BulkJob
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
from newsletter.subscribers.tags import clean_tag, find_tags, parse_tags, tag_counts, tag_names
from newsletter.subscribers.validate import clean_name, normalize_email
from newsletter.tasks.bulk import lease as bulk_lease
from newsletter.tasks.bulk import queue_bulk_job
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


def _filters(args: Any = None) -> tuple[str, str, str, int | None]:
    """Return the list's filter: search term, status, tag name and that tag's id."""
    args = request.args if args is None else args
    q = (args.get("q") or "").strip()[:MAX_SEARCH]
    status = args.get("status") or ""
    tag = (args.get("tag") or "").strip()
    if "\0" in q:
        abort(400, "The search may not contain a NUL character.")
    if status and status not in STATUSES:
        abort(400, "Unknown status; choose pending, confirmed, unsubscribed or bounced.")
    tag_id = None
    if tag:
        try:
            tag_id = find_tags(db.session(), [tag])[0].id
        except NewsletterError as exc:
            abort(404 if exc.status == 404 else 400, exc.message)
    return q, status, tag, tag_id


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
    q, status, tag, tag_id = _filters()
    after, before = _cursor("after"), _cursor("before")
    rows = search.page(
        db.session(), q, status, after=after, before=before, limit=PAGE_SIZE + 1, tag=tag_id
    )
    if before is not None:
        has_newer = len(rows) > PAGE_SIZE
        rows = list(reversed(rows[:PAGE_SIZE]))
        has_older = True
    else:
        has_older = len(rows) > PAGE_SIZE
        rows = rows[:PAGE_SIZE]
        has_newer = after is not None
    base = {k: v for k, v in (("q", q), ("status", status), ("tag", tag)) if v}
    filtered = bool(base)
    older_url = f"?{urlencode({**base, 'after': rows[-1].id})}" if rows and has_older else None
    newer_url = f"?{urlencode({**base, 'before': rows[0].id})}" if rows and has_newer else None
    return render_template(
        "editor/subscribers.html",
        rows=rows,
        q=q,
        status=status,
        statuses=STATUSES,
        counts=status_counts(),
        tag=tag,
        tags=tag_counts(db.session(), confirmed=False),
        row_tags=tag_names(db.session(), [r.id for r in rows]),
        bulk_jobs=bulk_jobs.latest(db.session()),
        # A search is counted only when asked: its count reads the whole list (LIKE), while its
        # pages are found through the trigram index.
        matching=count_matching(db.session(), Filter(q, status, tag_id))
        if filtered and (not q or request.args.get("count"))
        else None,
        count_url=f"?{urlencode({**base, 'count': 1})}" if filtered else None,
        older_url=older_url,
        newer_url=newer_url,
        export_url=url_for("subscribers.export") + (f"?{urlencode(base)}" if base else ""),
    )


@bp.get("/subscribers/export.csv")
@login_required
def export() -> Response:
    """Stream the subscribers that match the current filter as CSV."""
    q, status, _tag, tag_id = _filters()
    lines = csv_lines(status=status or None, search=q or None, tag=tag_id)
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
        sequence_total=tips_in_sequence(db.session()),
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


BULK_ACTIONS = ("tag", "untag", "unsubscribe", "erase", "export")
# A bulk unsubscribe or erase of at most this many is done in the request; more go to a worker.
IN_REQUEST = 100
STUCK_AFTER = timedelta(seconds=30)


@bp.post("/subscribers/bulk")
@login_required
def bulk() -> Any:
    """Act on everyone the list's filter matches (all of them, not one page)."""
    form = request.form
    q, status, tag, tag_id = _filters(form)
    kept = {k: v for k, v in (("q", q), ("status", status), ("tag", tag)) if v}
    back = url_for("subscribers.subscribers") + (f"?{urlencode(kept)}" if kept else "")
    action = form.get("do", "")
    if action not in BULK_ACTIONS:
        flash("Choose what to do with these people.", "error")
        return redirect(back, 303)
    if form.get("all") != "yes":
        flash("Tick “all that match” to act on everyone the filter matches.", "error")
        return redirect(back, 303)
    filt = Filter(q, status, tag_id)
    if action == "export":
        return redirect(url_for("subscribers.export") + (f"?{urlencode(kept)}" if kept else ""))
    try:
        if action in ("tag", "untag"):
            name = clean_tag(form.get("tag_name", ""))
            if action == "tag":
                n = tag_all(db.session(), filt, name)
                done = f"Tagged {n} {_people(n)} “{name}”."
            else:
                found = find_tags(db.session(), [name])[0]
                n = untag_all(db.session(), filt, found.id)
                done = f"Took the tag “{found.name}” off {n} {_people(n)}."
            db.session.commit()
        else:
            kind = BulkAction.UNSUBSCRIBE if action == "unsubscribe" else BulkAction.ERASE
            job = bulk_jobs.start(
                db.session(),
                kind,
                filt,
                by=_by(),
                tag_name=tag,
                typed=form.get("confirm_count", "") if kind is BulkAction.ERASE else None,
            )
            db.session.commit()
            if job.total <= IN_REQUEST:
                bulk_jobs.run(db.session(), job.id, lease=bulk_lease())
            else:
                queue_bulk_job(job.id)
            return redirect(url_for("subscribers.bulk_job", job_id=job.id), 303)
    except NewsletterError as exc:
        db.session.rollback()
        flash(exc.message, "error")
        return redirect(back, 303)
    flash(done)
    if action == "erase" or (action == "untag" and tag):
        back = url_for("subscribers.subscribers")
    return redirect(back, 303)


def _people(n: int) -> str:
    return "person" if n == 1 else "people"


@bp.get("/subscribers/bulk/<int:job_id>")
@login_required
def bulk_job(job_id: int) -> Any:
    """Show a bulk job's progress (the page reloads itself until it ends), then its report."""
    job = db.get_or_404(BulkJob, job_id, description="No such bulk action.")
    now = utcnow()
    # A job just queued is not stuck yet: a worker may be about to take it.
    stuck = job.stale(now, bulk_lease()) and (
        job.state == "running" or job.created_at < now - STUCK_AFTER
    )
    return render_template("editor/bulk_job.html", job=job, stuck=stuck)


@bp.post("/subscribers/bulk/<int:job_id>/resume")
@login_required
def bulk_job_resume(job_id: int) -> Any:
    """Queue again a bulk job whose worker went away; it goes on after its last whole chunk."""
    job = db.get_or_404(BulkJob, job_id, description="No such bulk action.")
    if not job.stale(utcnow(), bulk_lease()):
        flash("This action is not waiting for a worker: nothing to resume.", "error")
    else:
        bulk_jobs.requeue(db.session(), job.id, lease=bulk_lease())
        attempt = job.attempt
        db.session.commit()
        if queue_bulk_job(job.id, attempt):
            flash("Queued again: it goes on after the last chunk that was done.")
        else:
            flash("The queue (Redis) did not answer; try again in a moment.", "error")
    return redirect(url_for("subscribers.bulk_job", job_id=job.id), 303)
