"""Issues over the API: write, preview, test, send or schedule, pause, resume, cancel, status."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

from flask import g, jsonify, request
from flask.typing import ResponseReturnValue

from newsletter.api.plumbing import (
    ApiError,
    bp,
    cursor_arg,
    int_arg,
    json_body,
    string_field,
    token_required,
)
from newsletter.api.serialise import DEFAULT_LIMIT, ISSUE_STATUS, MAX_ID, MAX_LIMIT, issue_json
from newsletter.errors import Conflict, Invalid, NotFound
from newsletter.extensions import db
from newsletter.issues import actions as issues
from newsletter.issues import corrections
from newsletter.issues.segment import choose_segment
from newsletter.models import ISSUE_UNSENT, Editor, Issue, IssueStatus
from newsletter.services import mailer
from newsletter.subscribers.validate import normalize_email
from newsletter.tasks import dispatch


def _issue(issue_id: int) -> Issue:
    issue = db.session.get(Issue, issue_id) if 0 < issue_id <= MAX_ID else None
    if issue is None:
        raise NotFound(f"No issue with id {issue_id}.")
    return issue


@bp.get("/issues")
@token_required
def list_issues() -> ResponseReturnValue:
    """List issues newest first; pass next_cursor back as ?cursor= for the next page."""
    raw_status = request.args.get("status") or None
    if raw_status is not None and raw_status not in ISSUE_STATUS:
        raise ApiError(400, "invalid_parameter", "Unknown status.", "status")
    status = IssueStatus(raw_status) if raw_status else None
    limit = int_arg("limit", DEFAULT_LIMIT, 1, MAX_LIMIT) or DEFAULT_LIMIT
    cursor = cursor_arg()
    rows = issues.issues_page(status, cursor, limit + 1)
    more = len(rows) > limit
    rows = rows[:limit]
    return jsonify(
        {
            "data": [issue_json(i) for i in rows],
            "next_cursor": str(rows[-1].id) if more and rows else None,
        }
    )


@bp.post("/issues")
@token_required
def create_issue() -> ResponseReturnValue:
    """Create a draft issue from a subject, a Markdown body and an optional preheader."""
    data = json_body({"subject", "body_md", "preheader"}, {"subject", "body_md"})
    subject, body = string_field(data, "subject"), string_field(data, "body_md")
    preheader = string_field(data, "preheader") if "preheader" in data else ""
    issue = issues.create_issue(subject, body, preheader)
    return jsonify(issue_json(issue)), 201


@bp.get("/issues/<id:issue_id>")
@token_required
def get_issue(issue_id: int) -> ResponseReturnValue:
    """Return one issue."""
    return jsonify(issue_json(_issue(issue_id)))


def _token_owner() -> str:
    token = g.api_token
    editor = db.session.get(Editor, token.editor_id)
    return f"{editor.email if editor else 'an editor'}, with the API token “{token.name}”"


@bp.patch("/issues/<id:issue_id>")
@token_required
def update_issue(issue_id: int) -> ResponseReturnValue:
    """Change the subject, body and/or preheader of an issue that has not gone out; correct
    the subject and/or body of a sent one (its archive page and feed entry; nobody is mailed)."""
    issue = _issue(issue_id)
    data = json_body({"subject", "body_md", "preheader"})
    subject = string_field(data, "subject") if "subject" in data else issue.subject
    body = string_field(data, "body_md") if "body_md" in data else issue.body_md
    preheader = string_field(data, "preheader") if "preheader" in data else None
    if issue.status in corrections.CORRECTABLE:
        issue, _changed = corrections.correct_issue(
            issue_id, subject, body, preheader, by=_token_owner()
        )
        return jsonify(issue_json(issue))
    # Checked before the subject and body, so a late edit hears "too late" whatever it holds.
    if issue.status not in ISSUE_UNSENT:
        raise Conflict(f"Issue {issue_id} is {issue.status.value}; too late.")
    issue = issues.update_issue(issue_id, subject, body, preheader)
    return jsonify(issue_json(issue))


@bp.get("/issues/<id:issue_id>/preview")
@token_required
def preview_issue(issue_id: int) -> ResponseReturnValue:
    """Return the email as subscribers get it: subject, text and HTML."""
    _issue(issue_id)
    rendered = issues.preview(issue_id, mailer())
    return jsonify({"subject": rendered.subject, "text": rendered.text, "html": rendered.html})


@bp.post("/issues/<id:issue_id>/test")
@token_required
def test_issue(issue_id: int) -> ResponseReturnValue:
    """Send one test copy to an address."""
    _issue(issue_id)
    data = json_body({"to"}, {"to"})
    try:
        address = normalize_email(string_field(data, "to", 300))
    except Invalid as exc:  # the validator names its input "email"; here it is "to"
        raise ApiError(422, "invalid_email", exc.message, "to") from None
    dispatch.send_test(issue_id, address)
    return jsonify({"message": f"A test copy went to {address}."}), 202


def _parse_at(value: Any) -> datetime:
    if not isinstance(value, str) or len(value) > 64:
        raise ApiError(422, "invalid_at", "at must be an ISO 8601 date-time string.", "at")
    try:
        at = datetime.fromisoformat(value.replace("Z", "+00:00") if value.endswith("Z") else value)
    except ValueError:
        raise ApiError(422, "invalid_at", "at must be an ISO 8601 date-time.", "at") from None
    if at.tzinfo is None:
        raise ApiError(422, "invalid_at", "at needs a time zone, e.g. +00:00.", "at")
    return at


@bp.post("/issues/<id:issue_id>/send")
@token_required
def send_issue(issue_id: int) -> ResponseReturnValue:
    """Queue the issue now, or schedule it with {"at": "<ISO 8601 with zone>"}; {"tags": [...]}
    sends it to the confirmed readers with any of those tags (a segment)."""
    _issue(issue_id)
    # The body is optional: no body (or an empty one) means "now", to every confirmed reader.
    data = json_body({"at", "tags"}) if request.get_data(cache=True).strip() else {}
    at = _parse_at(data["at"]) if data.get("at") is not None else None
    tags = data.get("tags") or []
    if not isinstance(tags, list) or not all(isinstance(t, str) for t in tags):
        raise ApiError(422, "invalid_field", "The field tags must be a list of strings.", "tags")
    choose_segment(db.session(), issue_id, tags)
    db.session.commit()
    message = dispatch.send_issue(issue_id, at)
    db.session.expire_all()
    return jsonify({"message": message, "issue": issue_json(_issue(issue_id))}), 202


_ACTIONS: dict[str, Callable[[int], str]] = {
    "pause_issue": dispatch.pause_issue,
    "resume_issue": dispatch.resume_issue,
    "cancel_issue": dispatch.cancel_issue,
}


def _action(issue_id: int, name: str) -> ResponseReturnValue:
    _issue(issue_id)
    message = _ACTIONS[name](issue_id)
    db.session.expire_all()
    return jsonify({"message": message, "issue": issue_json(_issue(issue_id))})


@bp.post("/issues/<id:issue_id>/pause")
@token_required
def pause_issue(issue_id: int) -> ResponseReturnValue:
    """Pause a send."""
    return _action(issue_id, "pause_issue")


@bp.post("/issues/<id:issue_id>/resume")
@token_required
def resume_issue(issue_id: int) -> ResponseReturnValue:
    """Resume a paused send."""
    return _action(issue_id, "resume_issue")


@bp.post("/issues/<id:issue_id>/cancel")
@token_required
def cancel_issue(issue_id: int) -> ResponseReturnValue:
    """Cancel a send or a schedule."""
    return _action(issue_id, "cancel_issue")


@bp.get("/issues/<id:issue_id>/status")
@token_required
def issue_status(issue_id: int) -> ResponseReturnValue:
    """Return delivery counts, rate and ETA."""
    _issue(issue_id)
    return jsonify(issues.issue_status(issue_id))
