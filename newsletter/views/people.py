"""Editor pages about people: subscribers, CSV import/export, stats, API tokens, webhooks."""

from __future__ import annotations

import json
import logging
from typing import Any
from urllib.parse import urlencode, urlsplit

import sqlalchemy as sa
from flask import (
    Blueprint,
    Flask,
    Response,
    abort,
    flash,
    jsonify,
    redirect,
    render_template,
    request,
    stream_with_context,
    url_for,
)

from .. import apitokens, get_redis, search, stats, webhooks
from ..auth import current_editor, login_required
from ..charts import bar_chart, line_chart
from ..exports import csv_lines
from ..extensions import db
from ..imports import import_report, run_import
from ..models import (
    Delivery,
    ImportJob,
    Issue,
    Subscriber,
    SubscriberEvent,
    SubscriberStatus,
    Webhook,
    WebhookDelivery,
    utcnow,
)
from ..queues import enqueue
from ..subscriptions import ImportFormatError, erase, read_csv_rows

bp = Blueprint("people", __name__, url_prefix="/editor")
log = logging.getLogger(__name__)

PAGE_SIZE = 50
MAX_SEARCH = 100
MAX_UPLOAD = 20 * 1024 * 1024
COUNTS_TTL = 30  # per-issue delivery counts of a send in progress
STATUSES = [s.value for s in SubscriberStatus]


def register(app: Flask) -> None:
    """Attach the people pages to the app."""
    webhooks.install(app)
    app.register_blueprint(bp)


# --- subscribers ------------------------------------------------------------------------------


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
    if not raw.isdigit() or len(raw) > 18:
        abort(400, "That page link is broken; go back to the first page.")
    return int(raw)


def search_clause(q: str) -> sa.ColumnElement[bool]:
    """Match a search term anywhere in the address or the name, case-insensitively."""
    return search.like_clause(q)


def status_counts() -> dict[str, int]:
    """Return subscribers per status (kept by the database: cheap and always current)."""
    return search.status_counts(db.session)


@bp.get("/subscribers")
@login_required
def subscribers() -> Any:
    """List subscribers, newest first, a page at a time by id (keyset, no OFFSET)."""
    q, status = _filters()
    after, before = _cursor("after"), _cursor("before")
    rows = search.page(db.session, q, status, after=after, before=before, limit=PAGE_SIZE + 1)
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
        export_url=url_for("people.export") + (f"?{urlencode(base)}" if base else ""),
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


def _subscriber_or_404(subscriber_id: int) -> Subscriber:
    sub = db.session.get(Subscriber, subscriber_id)
    if sub is None:
        abort(404, "No subscriber with that number (they may have been erased).")
    return sub


@bp.get("/subscribers/<int:subscriber_id>")
@login_required
def subscriber(subscriber_id: int) -> Any:
    """Show one person: their status, history and every delivery."""
    sub = _subscriber_or_404(subscriber_id)
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
    return render_template("editor/subscriber.html", sub=sub, events=events, deliveries=deliveries)


@bp.route("/subscribers/<int:subscriber_id>/erase", methods=["GET", "POST"])
@login_required
def erase_subscriber(subscriber_id: int) -> Any:
    """Ask, then erase a person: every row with their address or name."""
    sub = _subscriber_or_404(subscriber_id)
    if request.method == "GET":
        return render_template("editor/subscriber_erase.html", sub=sub)
    if request.form.get("confirm_email", "").strip().lower() != sub.email:
        flash("Type the address exactly to confirm the erasure.", "error")
        return render_template("editor/subscriber_erase.html", sub=sub), 400
    email = sub.email
    erase(db.session, email)
    db.session.commit()
    flash(f"{email} was erased: no row holds their address or name any more.")
    return redirect(url_for("people.subscribers"))


# --- import -----------------------------------------------------------------------------------


@bp.route("/import", methods=["GET", "POST"])
@login_required
def import_page() -> Any:
    """Upload a CSV; a worker imports it while the next page shows the progress."""
    recent = db.session.scalars(sa.select(ImportJob).order_by(ImportJob.id.desc()).limit(10))
    if request.method == "GET":
        return render_template("editor/import.html", recent=list(recent), error=None)

    def refuse(message: str, code: int = 400) -> Any:
        return render_template("editor/import.html", recent=list(recent), error=message), code

    if request.content_length and request.content_length > MAX_UPLOAD + 64 * 1024:
        return refuse("That file is too large: the limit is 20 MB per import.", 413)
    upload = request.files.get("file")
    if upload is None or not upload.filename:
        return refuse("Choose a CSV file to import.")
    choice = request.form.get("mode")
    if choice not in ("confirmed", "confirm"):
        return refuse(
            "Choose whether these people already opted in or should each get a confirmation."
        )
    data = upload.stream.read(MAX_UPLOAD + 1)
    if len(data) > MAX_UPLOAD:
        return refuse("That file is too large: the limit is 20 MB per import.", 413)
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        return refuse("That file is not UTF-8 text; save it as CSV (UTF-8) and try again.")
    if "\0" in text:
        return refuse("That file is not a CSV text file.")
    try:
        next(read_csv_rows(text), None)
    except ImportFormatError as exc:
        return refuse(str(exc))
    except Exception:
        return refuse("That file could not be read as CSV.")
    job = ImportJob(
        filename=(upload.filename or "upload.csv")[:200],
        csv_text=text,
        confirmed=choice == "confirmed",
    )
    db.session.add(job)
    db.session.commit()
    enqueue(run_import, job.id, job_timeout=3600)
    return redirect(url_for("people.import_status", import_id=job.id))


def _import_or_404(import_id: int) -> ImportJob:
    job = db.session.get(ImportJob, import_id)
    if job is None:
        abort(404, "No import with that number.")
    return job


@bp.get("/import/<int:import_id>")
@login_required
def import_status(import_id: int) -> Any:
    """Show an import's progress bar and, once done, its report."""
    job = _import_or_404(import_id)
    return render_template("editor/import_status.html", job=job, report=import_report(job))


@bp.get("/import/<int:import_id>.json")
@login_required
def import_status_json(import_id: int) -> Any:
    """Return an import's progress for the page's poller."""
    return jsonify(import_report(_import_or_404(import_id)))


# --- stats ------------------------------------------------------------------------------------

COLORS = ["#2454d6", "#1f7a44", "#a4490e", "#b3261e"]


def _cached_delivery_counts(issue: Issue) -> dict[str, int]:
    key = f"newsletter:issue_counts:{issue.id}"
    try:
        client = get_redis()
        cached = client.get(key)
        if cached:
            return json.loads(cached)  # type: ignore[no-any-return]
    except Exception:
        client = None
    counts = stats.delivery_counts(db.session, issue.id)
    if client is not None:
        # A finished send changes no more: keep it longer.
        ttl = 3600 if issue.status.value in ("sent", "cancelled") else COUNTS_TTL
        try:
            client.set(key, json.dumps(counts), ex=ttl)
        except Exception:
            log.warning("issue counts cache unavailable", exc_info=True)
    return counts


@bp.get("/stats")
@login_required
def stats_page() -> Any:
    """Charts: subscribers per week, confirmation rate, and how each issue went."""
    weeks = stats.weekly(db.session, utcnow().date(), weeks=26)
    labels = [w.start.strftime("%d %b") for w in weeks]
    weekly_chart = bar_chart(
        "Subscribers per week",
        labels,
        {
            "new": [w.counts["subscribed"] for w in weeks],
            "confirmed": [w.counts["confirmed"] for w in weeks],
            "unsubscribed": [w.counts["unsubscribed"] for w in weeks],
            "bounced": [w.counts["bounced"] for w in weeks],
        },
        COLORS,
    )
    rate_chart = line_chart(
        "Confirmation rate per week", labels, [w.confirmation_rate for w in weeks], "#1f7a44"
    )
    figures = stats.issue_figures(
        db.session, stats.recent_issues(db.session), _cached_delivery_counts
    )
    issue_chart = bar_chart(
        "Per issue",
        [f"#{f.id}" for f in figures],
        {
            "sent": [f.sent for f in figures],
            "failed": [f.failed for f in figures],
            "bounced after": [f.bounced for f in figures],
            "unsubscribed after": [f.unsubscribed for f in figures],
        },
        COLORS,
    )
    all_time = stats.kind_totals(db.session)
    new, confirmed = all_time.get("subscribed", 0), all_time.get("confirmed", 0)
    return render_template(
        "editor/stats.html",
        counts=status_counts(),
        weekly_chart=weekly_chart,
        rate_chart=rate_chart,
        issue_chart=issue_chart,
        figures=figures,
        overall_rate=(min(1.0, confirmed / new) if new else None),
    )


# --- API tokens -------------------------------------------------------------------------------


@bp.route("/tokens", methods=["GET", "POST"])
@login_required
def tokens() -> Any:
    """List API tokens and create one (its value is shown this once)."""
    new_secret = None
    if request.method == "POST":
        name = (request.form.get("name") or "").strip()
        if len(name) > 100 or any(ord(c) < 32 for c in name):
            flash("Give the token a short name on one line.", "error")
            return render_template(
                "editor/tokens.html", tokens=apitokens.list_tokens(db.session), new_secret=None
            ), 400
        editor = current_editor()
        made = apitokens.create_token(db.session, editor.id, name)
        db.session.commit()
        new_secret = made.secret
    return render_template(
        "editor/tokens.html", tokens=apitokens.list_tokens(db.session), new_secret=new_secret
    )


@bp.post("/tokens/<int:token_id>/revoke")
@login_required
def revoke_token(token_id: int) -> Any:
    """Revoke an API token at once."""
    if apitokens.revoke_token(db.session, token_id):
        db.session.commit()
        flash("Token revoked: requests with it now get 401.")
    else:
        flash("That token was already revoked or does not exist.", "error")
    return redirect(url_for("people.tokens"))


# --- webhooks ---------------------------------------------------------------------------------


def _valid_url(url: str) -> bool:
    if len(url) > 500 or any(ord(c) <= 32 for c in url):
        return False
    parts = urlsplit(url)
    return parts.scheme in ("http", "https") and bool(parts.hostname)


@bp.route("/webhooks", methods=["GET", "POST"])
@login_required
def webhooks_page() -> Any:
    """Register a webhook, list them, and show the latest deliveries."""
    code = 200
    new_secret = None
    if request.method == "POST":
        url = (request.form.get("url") or "").strip()
        events = [e for e in request.form.getlist("events") if e in webhooks.EVENTS]
        if not _valid_url(url):
            flash("Enter an http:// or https:// URL.", "error")
            code = 400
        elif not events:
            flash("Pick at least one event.", "error")
            code = 400
        else:
            hook = webhooks.register_webhook(db.session, url, events)
            db.session.commit()
            new_secret = hook.secret
            flash("Webhook added. Its signing secret is shown below.")
    hooks = db.session.scalars(sa.select(Webhook).order_by(Webhook.id)).all()
    log_rows = db.session.execute(
        sa.select(WebhookDelivery, Webhook.url)
        .join(Webhook, Webhook.id == WebhookDelivery.webhook_id)
        .order_by(WebhookDelivery.id.desc())
        .limit(50)
    ).all()
    return render_template(
        "editor/webhooks.html",
        hooks=hooks,
        log_rows=log_rows,
        events=webhooks.EVENTS,
        new_secret=new_secret,
    ), code


@bp.post("/webhooks/<int:webhook_id>/delete")
@login_required
def delete_webhook(webhook_id: int) -> Any:
    """Delete a webhook and its delivery log."""
    hook = db.session.get(Webhook, webhook_id)
    if hook is None:
        abort(404, "No webhook with that number.")
    db.session.execute(sa.delete(WebhookDelivery).where(WebhookDelivery.webhook_id == hook.id))
    db.session.delete(hook)
    db.session.commit()
    flash("Webhook deleted.")
    return redirect(url_for("people.webhooks_page"))
