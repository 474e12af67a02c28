"""The editor's workplace: login, the issues list, writing, preview, test, queue and progress."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from flask import (
    Blueprint,
    Flask,
    abort,
    flash,
    jsonify,
    redirect,
    render_template,
    request,
    url_for,
)

from newsletter.auth.passwords import authenticate
from newsletter.auth.sessions import current_editor, log_in, log_out, login_required, safe_next
from newsletter.auth.throttle import clear_failures, login_blocked, record_failure
from newsletter.auth.zones import check_zone, local_text, utc_text
from newsletter.bounces.listing import issue_counts
from newsletter.errors import Invalid, NewsletterError
from newsletter.extensions import db, settings
from newsletter.issues import actions as issues
from newsletter.issues import corrections
from newsletter.issues.segment import audience_of, choose_segment, segment_of
from newsletter.models import (
    ISSUE_EDITABLE,
    ISSUE_STARTED,
    ISSUE_UNSENT,
    MAX_EMAIL_LENGTH,
    Issue,
    IssueStatus,
)
from newsletter.services import mailer
from newsletter.subscribers.tags import tag_counts
from newsletter.tasks import dispatch
from newsletter.web.editor import send_status, words
from newsletter.web.editor.writing import editor_as_reader, preflight_gate, preflight_report

NO_ISSUE = "There is no issue with that number."

bp = Blueprint("editor", __name__, url_prefix="/editor")

PER_PAGE = 25
# Past this page the OFFSET would not fit the database's integer: no list is that long.
MAX_PAGE = 2**31 // PER_PAGE
SCHEDULE_FORMATS = ("%Y-%m-%dT%H:%M", "%Y-%m-%dT%H:%M:%S")


def register(app: Flask) -> None:
    """Attach the editor pages to ``app``."""
    app.register_blueprint(bp)


@bp.app_context_processor
def _template_helpers() -> dict[str, Any]:
    return {"current_editor": current_editor, "history_words": words.history}


@bp.url_value_preprocessor
def _admit_a_long_body(endpoint: str | None, _values: dict[str, Any] | None) -> None:
    # Before CSRF protection reads the form: a body may hold MAX_BODY characters of up to 4
    # bytes each, past the app's 64 KB a field; refused later, it is shown again with the error.
    if endpoint in ("editor.new_issue", "editor.save_issue", "editor.correct") and (
        request.method == "POST"
    ):
        request.max_form_memory_size = 4 * issues.MAX_BODY + 4096


# --- login ----------------------------------------------------------------------------------


def _client_ip() -> str:
    return request.remote_addr or "unknown"


@bp.route("/login", methods=["GET", "POST"])
def login() -> Any:
    """Show the login form; check the email and password; throttle repeated failures."""
    target = safe_next(request.values.get("next"), url_for("editor.dashboard"))
    if request.method == "GET":
        if current_editor() is not None:
            return redirect(target)
        return render_template("editor/login.html", next=target, email="")
    email = request.form.get("email", "")[:MAX_EMAIL_LENGTH]
    password = request.form.get("password", "")
    blocked = login_blocked(email, _client_ip())
    if blocked is not None:
        message = (
            f"Too many failed attempts. Try again in {blocked.minutes} "
            f"minute{'' if blocked.minutes == 1 else 's'}."
        )
        response = render_template("editor/login.html", next=target, email=email, error=message)
        return response, 429, {"Retry-After": str(blocked.retry_after)}
    editor = authenticate(db.session(), email, password) if email and password else None
    if editor is None:
        record_failure(email, _client_ip())
        db.session.rollback()
        return render_template(
            "editor/login.html",
            next=target,
            email=email,
            error="That email and password do not match an editor account.",
        ), 401
    db.session.commit()
    clear_failures(email)
    log_in(editor)
    return redirect(target)


@bp.post("/logout")
def logout() -> Any:
    """End the session (POST with a CSRF token, so no other site can log an editor out)."""
    log_out()
    flash("You are logged out.")
    return redirect(url_for("editor.login"))


# --- issues ---------------------------------------------------------------------------------


def _progress(issue: Issue) -> dict[str, Any] | None:
    if issue.status not in ISSUE_STARTED:
        return None
    return issues.issue_status(issue.id)


def _page_number(raw: str) -> int:
    """Return the page a ``?page=`` asks for, from 1; a clear 400 for anything else."""
    digits = raw.strip()
    if not (digits.isascii() and digits.isdigit()) or int(digits[:20]) < 1:
        abort(400, "The page number must be a whole number from 1; go back to the first page.")
    return int(digits[:20]) if len(digits) <= 20 else MAX_PAGE + 1


@bp.get("/")
@login_required
def dashboard() -> Any:
    """List issues, newest first, with their status and progress."""
    page = _page_number(request.args.get("page", "1"))
    rows = []
    if page <= MAX_PAGE:
        rows = list(
            db.session.scalars(
                sa.select(Issue)
                .order_by(Issue.created_at.desc(), Issue.id.desc())
                .limit(PER_PAGE + 1)
                .offset((page - 1) * PER_PAGE)
            )
        )
    if page > 1 and not rows:
        total = db.session.scalar(sa.select(sa.func.count()).select_from(Issue)) or 0
        last = max(1, -(-total // PER_PAGE))
        abort(404, f"There is no such page: the list of issues has {last} page(s).")
    more = len(rows) > PER_PAGE
    rows = rows[:PER_PAGE]
    progress = {i.id: _progress(i) for i in rows}
    return render_template(
        "editor/dashboard.html", issues=rows, progress=progress, page=page, more=more
    )


@bp.route("/issues/new", methods=["GET", "POST"])
@login_required
def new_issue() -> Any:
    """Write a new issue (subject and Markdown body); it starts as a draft."""
    if request.method == "GET":
        return render_template(
            "editor/issue_form.html", issue=None, subject="", body_md="", preheader=""
        )
    subject = request.form.get("subject", "")
    body_md = request.form.get("body_md", "")
    preheader = request.form.get("preheader", "")
    try:
        issue = issues.create_issue(subject, body_md, preheader)
    except NewsletterError as exc:
        page = render_template(
            "editor/issue_form.html",
            subject=subject,
            body_md=body_md,
            preheader=preheader,
            error=exc.message,
        )
        return page, 400
    flash("Draft saved. Preview it, send yourself a test, then queue or schedule it.")
    return redirect(url_for("editor.issue_page", issue_id=issue.id))


def _render_issue(issue: Issue, status: int = 200, **extra: Any) -> Any:
    segment = segment_of(db.session(), issue.id)
    editable = issue.status in ISSUE_EDITABLE
    unsent = issue.status in ISSUE_UNSENT
    found = _progress(issue)
    return render_template(
        "editor/issue.html",
        issue=issue,
        progress=found,
        view=send_status.send_view(db.session(), issue, found) if found else None,
        label=send_status.label(issue.status),
        slot_at=send_status.next_slot_at(settings().weekly_slot),
        bounced=issue_counts(db.session(), issue.id) if issue.status in ISSUE_STARTED else None,
        editable=editable,
        editor=current_editor(),
        audience_now=audience_of(db.session(), segment) if unsent else issue.audience,
        segment=segment,
        tag_choices=tag_counts(db.session()) if unsent else [],
        checks=preflight_report(issue) if editable else None,
        correctable=issue.status in corrections.CORRECTABLE,
        changes=corrections.history(db.session(), issue),
        subject=extra.pop("subject", issue.subject),
        body_md=extra.pop("body_md", issue.body_md),
        preheader=extra.pop("preheader", issue.preheader),
        **extra,
    ), status


@bp.get("/issues/<id:issue_id>")
@login_required
def issue_page(issue_id: int) -> Any:
    """Show one issue: edit form while editable, actions, and live progress once queued."""
    return _render_issue(db.get_or_404(Issue, issue_id, description=NO_ISSUE))


@bp.post("/issues/<id:issue_id>")
@login_required
def save_issue(issue_id: int) -> Any:
    """Save the subject, preheader and body of an issue that has not been queued yet."""
    issue = db.get_or_404(Issue, issue_id, description=NO_ISSUE)
    subject = request.form.get("subject", "")
    body_md = request.form.get("body_md", "")
    preheader = request.form.get("preheader", "")
    try:
        issues.update_issue(issue.id, subject, body_md, preheader)
    except NewsletterError as exc:
        db.session.rollback()
        db.session.refresh(issue)
        code = 400 if issue.status in ISSUE_EDITABLE else 409
        return _render_issue(
            issue, code, error=exc.message, subject=subject, body_md=body_md, preheader=preheader
        )
    flash("Saved.")
    return redirect(url_for("editor.issue_page", issue_id=issue.id))


@bp.post("/issues/<id:issue_id>/correct")
@login_required
def correct(issue_id: int) -> Any:
    """Correct a sent issue's subject and body: its archive page and feed; nobody is mailed."""
    issue = db.get_or_404(Issue, issue_id, description=NO_ISSUE)
    subject = request.form.get("subject", "")
    body_md = request.form.get("body_md", "")
    editor = current_editor()
    try:
        _, changed = corrections.correct_issue(
            issue.id, subject, body_md, by=editor.email if editor else "an editor"
        )
    except NewsletterError as exc:
        db.session.refresh(issue)
        code = 400 if issue.status in corrections.CORRECTABLE else 409
        return _render_issue(issue, code, error=exc.message, subject=subject, body_md=body_md)
    if changed:
        flash("Corrected: the archive page and the feed show the new text. Nobody was mailed.")
    else:
        flash("Nothing to correct: the text is as it was.")
    return redirect(url_for("editor.issue_page", issue_id=issue.id))


@bp.get("/issues/<id:issue_id>/preview")
@login_required
def preview(issue_id: int) -> Any:
    """Show the email exactly as a subscriber gets it: the HTML part and the text part."""
    issue = db.get_or_404(Issue, issue_id, description=NO_ISSUE)
    rendered = issues.preview(issue.id, mailer(), editor_as_reader())
    return render_template("editor/preview.html", issue=issue, rendered=rendered)


def _action(issue_id: int, run: Any, *, checked: bool = False, test: bool = False) -> Any:
    """Run one issue action; flash its message, or show the issue page with the error.

    A ``checked`` action (a test or a send) first passes preflight: failures stop it, and
    warnings stop a send unless the editor ticked "send anyway" (then the flash says so).
    """
    issue = db.get_or_404(Issue, issue_id, description=NO_ISSUE)
    note = ""
    if checked:
        refusal, note = preflight_gate(issue, test=test)
        if refusal:
            return _render_issue(issue, 409, error=refusal)
    try:
        message = run(issue)
    except NewsletterError as exc:
        db.session.rollback()
        db.session.refresh(issue)
        return _render_issue(issue, 409, error=exc.message)
    if message:
        flash(send_status.editor_words(message) + note)
    return redirect(url_for("editor.issue_page", issue_id=issue_id))


@bp.post("/issues/<id:issue_id>/test")
@login_required
def send_test(issue_id: int) -> Any:
    """Send one test copy of the issue to an address."""
    to = request.form.get("to", "").strip()
    if not to:
        return _render_issue(
            db.get_or_404(Issue, issue_id, description=NO_ISSUE),
            400,
            error="Enter an address for the test.",
        )

    def run(issue: Issue) -> str:
        dispatch.send_test(issue.id, to)
        return f"A test copy went to {to}."

    return _action(issue_id, run, checked=True, test=True)


@bp.post("/issues/<id:issue_id>/send")
@login_required
def send_now(issue_id: int) -> Any:
    """Queue the issue for every confirmed subscriber now (a repeat starts nothing new)."""
    return _action(issue_id, lambda issue: dispatch.send_issue(issue.id), checked=True)


def parse_local_time(value: str, zone_name: str) -> datetime:
    """Turn a datetime-local value and an IANA zone name into an aware UTC datetime."""
    try:
        zone = check_zone(zone_name)
    except Invalid as exc:
        raise ValueError(exc.message) from None
    for fmt in SCHEDULE_FORMATS:
        try:
            naive = datetime.strptime(value.strip(), fmt)
            break
        except ValueError:
            continue
    else:
        raise ValueError("Enter a date and time, like 2030-03-04 09:00.")
    return naive.replace(tzinfo=zone).astimezone(UTC)


@bp.post("/issues/<id:issue_id>/schedule")
@login_required
def schedule(issue_id: int) -> Any:
    """Schedule the issue at a date and time in a chosen time zone."""
    issue = db.get_or_404(Issue, issue_id, description=NO_ISSUE)
    try:
        at = parse_local_time(request.form.get("at", ""), request.form.get("tz", "UTC"))
    except ValueError as exc:
        return _render_issue(issue, 400, error=str(exc))
    if at <= datetime.now(UTC):
        return _render_issue(
            issue, 400, error="That time has passed; pick one in the future, or queue it now."
        )
    zone = check_zone(request.form.get("tz", "UTC"))

    def run(i: Issue) -> str:
        said = dispatch.send_issue(i.id, at=at)
        db.session.refresh(i)
        if i.status is not IssueStatus.SCHEDULED:
            return said
        # Said back in the zone it was picked in, the UTC time beside it.
        return f"Scheduled for {local_text(at, zone)} ({utc_text(at)})."

    return _action(issue_id, run, checked=True)


@bp.post("/issues/<id:issue_id>/ready")
@login_required
def ready(issue_id: int) -> Any:
    """Mark the issue ready for the next weekly slot."""
    return _action(
        issue_id, lambda issue: issues.mark_ready(issue.id, settings().weekly_slot), checked=True
    )


@bp.post("/issues/<id:issue_id>/segment")
@login_required
def set_segment(issue_id: int) -> Any:
    """Choose who gets the issue: the confirmed readers with any of the ticked tags, or all."""
    names = request.form.getlist("tag")

    def run(issue: Issue) -> str:
        chosen = choose_segment(db.session(), issue.id, names)
        db.session.commit()
        if issue.status not in ISSUE_UNSENT:
            return "This issue was already queued; its audience stays as it was."
        count = audience_of(db.session(), chosen)
        who = f"the readers tagged {', '.join(chosen)}" if chosen else "every confirmed reader"
        return f"This issue goes to {who}: {count} now."

    return _action(issue_id, run)


@bp.get("/issues/<id:issue_id>/audience.json")
@login_required
def audience_count(issue_id: int) -> Any:
    """Return how many readers a send to the given tags (?tag=…, none: all) would reach now."""
    db.get_or_404(Issue, issue_id, description=NO_ISSUE)
    try:
        count = audience_of(db.session(), request.args.getlist("tag")[:200])
    except NewsletterError as exc:
        return jsonify({"error": exc.message}), exc.status
    return jsonify({"count": count})


@bp.post("/issues/<id:issue_id>/pause")
@login_required
def pause(issue_id: int) -> Any:
    """Pause a running send."""
    return _action(issue_id, lambda issue: dispatch.pause_issue(issue.id))


@bp.post("/issues/<id:issue_id>/resume")
@login_required
def resume(issue_id: int) -> Any:
    """Resume a paused send."""
    return _action(issue_id, lambda issue: dispatch.resume_issue(issue.id))


@bp.post("/issues/<id:issue_id>/cancel")
@login_required
def cancel(issue_id: int) -> Any:
    """Cancel a scheduled, ready or running send."""
    return _action(issue_id, lambda issue: dispatch.cancel_issue(issue.id))


@bp.get("/issues/<id:issue_id>/progress.json")
@login_required
def progress(issue_id: int) -> Any:
    """Return the send's counts, rate and ETA for the live progress bar."""
    issue = db.get_or_404(Issue, issue_id, description=NO_ISSUE)
    found = issues.issue_status(issue.id)
    audience = int(found.get("audience") or 0)
    done = int(found.get("done") or 0)
    finished = found["status"] in (IssueStatus.SENT.value, IssueStatus.CANCELLED.value)
    if audience:
        percent = min(100.0, round(100.0 * done / audience, 1))
    else:
        percent = 100.0 if found["status"] == IssueStatus.SENT.value else 0.0
    view = send_status.send_view(db.session(), issue, found)
    return jsonify({**found, **view, "percent": percent, "finished": finished})
