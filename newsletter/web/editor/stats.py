"""The editor's stats page: charts drawn on the server from aggregates only."""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime, time, timedelta
from typing import Any

from flask import (
    Blueprint,
    Flask,
    render_template,
)

from newsletter.auth.sessions import login_required
from newsletter.bounces.listing import issue_counts
from newsletter.extensions import db, get_redis
from newsletter.issues.segment import segments_of
from newsletter.models import (
    Issue,
    utcnow,
)
from newsletter.subscribers import search, stats
from newsletter.subscribers.manage import ERASED_STAT, PAUSED_STAT, Reason
from newsletter.subscribers.state import DOORS, IMPORTED_STAT
from newsletter.web.charts import bar_chart, line_chart

log = logging.getLogger(__name__)
bp = Blueprint("stats", __name__, url_prefix="/editor")

COUNTS_TTL = 30  # per-issue delivery counts of a send in progress
RECENT_REASONS = timedelta(days=90)
# Editor pages are in English whatever the readers' language.
REASON_LABELS = {
    Reason.TOO_MANY: "Too many emails",
    Reason.NOT_RELEVANT: "Not relevant to me",
    Reason.NEVER_SIGNED_UP: "I never signed up",
    Reason.OTHER: "Another reason",
}


def register(app: Flask) -> None:
    """Attach these pages to the app."""
    app.register_blueprint(bp)


COLORS = ["#2454d6", "#1f7a44", "#a4490e", "#b3261e"]
WEEKLY_COLORS = ["#2454d6", "#7d8597", "#1f7a44", "#a4490e", "#b3261e"]
WEEKS = 26
# How the page names the doors readers leave by (``state.DOORS``).
DOOR_LABELS = {
    "one-click": "One-click",
    "page": "Unsubscribe page",
    "complaint": "Complaint",
    "bounce": "Bounce",
    "editor": "Editor",
    "import": "Import",
}


def _cached_delivery_counts(issue: Issue) -> dict[str, int]:
    key = f"newsletter:issue_counts:{issue.id}"
    try:
        client = get_redis()
        cached = client.get(key)
        if cached:
            return json.loads(cached)  # type: ignore[no-any-return]
    except Exception:
        client = None
    counts = stats.delivery_counts(db.session(), issue.id)
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
    weeks = stats.weekly(db.session(), utcnow().date(), weeks=WEEKS)
    since = datetime.combine(weeks[0].start, time.min, tzinfo=UTC)
    labels = [w.start.strftime("%d %b") for w in weeks]
    weekly_chart = bar_chart(
        "Subscribers per week",
        labels,
        {
            "new": [w.signups for w in weeks],
            "imported": [w.counts[IMPORTED_STAT] for w in weeks],
            "confirmed": [w.counts["confirmed"] for w in weeks],
            "unsubscribed": [w.counts["unsubscribed"] for w in weeks],
            "bounced": [w.counts["bounced"] for w in weeks],
        },
        WEEKLY_COLORS,
    )
    rate_chart = line_chart(
        "Confirmation rate per week", labels, [w.confirmation_rate for w in weeks], "#1f7a44"
    )
    figures = stats.issue_figures(
        db.session(), stats.recent_issues(db.session()), _cached_delivery_counts
    )
    issue_chart = bar_chart(
        "Per issue",
        [f.subject for f in figures],
        {
            "sent": [f.sent for f in figures],
            "failed": [f.failed for f in figures],
            "bounced after": [f.bounced for f in figures],
            "unsubscribed after": [f.unsubscribed for f in figures],
        },
        COLORS,
    )
    all_time = stats.kind_totals(db.session())
    reasons = stats.leaving_reasons(db.session())
    recent = stats.leaving_reasons(db.session(), utcnow().date() - RECENT_REASONS)
    return render_template(
        "editor/stats.html",
        reasons=[(REASON_LABELS[r], recent[r], reasons[r]) for r in Reason],
        unexplained=max(0, all_time.get("unsubscribed", 0) - sum(reasons.values())),
        pauses=all_time.get(PAUSED_STAT, 0),
        erasures=all_time.get(ERASED_STAT, 0),
        skipped=stats.skip_reasons(db.session(), [f.id for f in figures]),
        counts=search.status_counts(db.session()),
        weekly_chart=weekly_chart,
        rate_chart=rate_chart,
        issue_chart=issue_chart,
        figures=figures,
        exact={f.id: issue_counts(db.session(), f.id) for f in figures},
        segments=segments_of(db.session(), [f.id for f in figures]),
        overall_rate=stats.overall_rate(all_time),
        asked=stats.Week(weeks[0].start, all_time).asked,
        imported=all_time.get(IMPORTED_STAT, 0),
        doors=[(d, DOOR_LABELS[d]) for d in DOORS],
        growth=stats.tag_growth(db.session(), since),
        since=weeks[0].start,
    )
