"""Bounces and complaints over the API: the editors' list, newest first."""

from __future__ import annotations

from flask import jsonify, request
from flask.typing import ResponseReturnValue

from newsletter.api.plumbing import ApiError, bp, cursor_arg, int_arg, token_required
from newsletter.api.serialise import BOUNCE_KINDS, DEFAULT_LIMIT, MAX_LIMIT, bounce_json
from newsletter.bounces import listing as bounce_listing
from newsletter.extensions import db
from newsletter.models import BounceKind


@bp.get("/bounces")
@token_required
def list_bounces() -> ResponseReturnValue:
    """List bounces and complaints newest first; pass next_cursor back as ?cursor=."""
    raw_kind = request.args.get("kind") or None
    if raw_kind is not None and raw_kind not in BOUNCE_KINDS:
        raise ApiError(400, "invalid_parameter", "Unknown kind.", "kind")
    limit = int_arg("limit", DEFAULT_LIMIT, 1, MAX_LIMIT) or DEFAULT_LIMIT
    cursor = cursor_arg()
    kind = BounceKind(raw_kind) if raw_kind else None
    rows = bounce_listing.recent(db.session(), kind=kind, before=cursor, limit=limit + 1)
    more = len(rows) > limit
    rows = rows[:limit]
    return jsonify(
        {
            "data": [bounce_json(b) for b in rows],
            "next_cursor": str(rows[-1].id) if more and rows else None,
        }
    )
