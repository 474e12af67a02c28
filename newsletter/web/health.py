"""``/healthz``: whether the database and Redis answer, and what it knows of the workers.

The status code speaks for the web process only (SPEC: 200 when the database and Redis answer,
503 otherwise), so a load balancer keeps sending readers to a web process that can serve them
while the workers are down. The body says what else an operator should know: how many workers
are alive and when one was last seen, which sends are paused and why, and which wait for
a relay they cannot reach.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import sqlalchemy as sa
from flask import jsonify

from newsletter.extensions import db, get_redis
from newsletter.models import Issue, IssueStatus
from newsletter.tasks.health import workers


def healthz_answer() -> Any:
    """Return the JSON answer and its status code (200 or 503)."""
    checks: dict[str, str] = {}
    body: dict[str, Any] = {}
    try:
        db.session.execute(sa.text("SELECT 1"))
        checks["database"] = "ok"
        body["paused_sends"] = [
            {"issue": issue_id, "reason": reason}
            for issue_id, reason in db.session.execute(
                sa.select(Issue.id, Issue.pause_reason)
                .where(Issue.status == IssueStatus.PAUSED)
                .order_by(Issue.id)
            )
        ]
        # Sends that wait for a relay they cannot reach (they go on by themselves).
        body["relay_waits"] = [
            {"issue": issue_id, "since": _iso(since), "error": error}
            for issue_id, since, error in db.session.execute(
                sa.select(Issue.id, Issue.relay_down_since, Issue.relay_error)
                .where(Issue.status == IssueStatus.SENDING, Issue.relay_down_since.is_not(None))
                .order_by(Issue.id)
            )
        ]
        db.session.rollback()  # hold no transaction (a read lock, on SQLite) past the check
    except Exception as exc:  # any driver error means the same thing here: not healthy
        db.session.rollback()
        checks["database"] = f"error: {type(exc).__name__}"
    try:
        connection = get_redis()
        connection.ping()
        checks["redis"] = "ok"
        seen = workers(connection)
        body["workers"] = {"alive": seen.alive, "last_seen": _iso(seen.last_seen)}
    except Exception as exc:
        checks.setdefault("redis", f"error: {type(exc).__name__}")
    healthy = all(v == "ok" for v in checks.values())
    return jsonify({**checks, **body}), 200 if healthy else 503


def _iso(moment: datetime | None) -> str | None:
    return None if moment is None else moment.isoformat(timespec="seconds")
