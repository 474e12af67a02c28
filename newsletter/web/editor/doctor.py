"""The editor's "Sending health" page: `newsletter doctor`'s checks, cached for a few minutes.

The checks open a session with the relay and make a dozen DNS lookups, several seconds when
something is down, so no page runs them on every view: /editor/doctor runs them (with short
timeouts) when the last result is older than CACHE_SECONDS or an editor asks again, and keeps
the result in Redis, shared by every web process; the dashboard only reads that result.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import redis
from flask import Blueprint, Flask, redirect, render_template, url_for

from newsletter.auth.sessions import login_required
from newsletter.doctor import Check, Lookup, Status, run_checks, worst
from newsletter.extensions import get_redis
from newsletter.services import branded_settings
from newsletter.tasks import mail_setup

log = logging.getLogger(__name__)
bp = Blueprint("doctor", __name__, url_prefix="/editor")

CACHE_KEY = "newsletter:doctor"
CACHE_SECONDS = 300
# Short enough for a page to answer while a server is down; the CLI waits longer.
DNS_TIMEOUT = 2.0
SMTP_TIMEOUT = 5.0


def register(app: Flask) -> None:
    """Attach the page to the app."""
    app.register_blueprint(bp)


@dataclass(frozen=True)
class Health:
    """The checks' latest result and when it was taken."""

    checks: list[Check]
    checked_at: datetime

    @property
    def status(self) -> Status:
        """Return the worst status among the checks."""
        return worst(c.status for c in self.checks)

    @property
    def headline(self) -> str:
        """Say in a few words how the checks came out."""
        failed = [c.name for c in self.checks if c.status == Status.FAIL]
        warned = [c.name for c in self.checks if c.status == Status.WARN]
        if not failed and not warned:
            return f"all {len(self.checks)} checks ok"
        parts = []
        if failed:
            parts.append(f"{len(failed)} failed ({', '.join(failed)})")
        if warned:
            parts.append(f"{len(warned)} to look at ({', '.join(warned)})")
        return ", ".join(parts)

    @property
    def age(self) -> str:
        """Say how long ago the checks ran."""
        seconds = int((datetime.now(UTC) - self.checked_at).total_seconds())
        if seconds < 60:
            return "just now"
        minutes = seconds // 60
        return f"{minutes} minute{'s' if minutes != 1 else ''} ago"


def cached_health() -> Health | None:
    """Return the last result if it is still fresh (Redis keeps it CACHE_SECONDS)."""
    try:
        raw = get_redis().get(CACHE_KEY)
    except redis.RedisError:
        log.warning("doctor cache unavailable", exc_info=True)
        return None
    if not raw:
        return None
    try:
        data = json.loads(raw)
        return Health(
            [Check.from_dict(c) for c in data["checks"]],
            datetime.fromisoformat(data["checked_at"]),
        )
    except (ValueError, KeyError, TypeError):
        return None  # written by another version: simply run again


def fresh_health() -> Health:
    """Run every check now and keep the result for the next views."""
    found = branded_settings()
    lookup = Lookup.for_config(found, timeout=DNS_TIMEOUT)
    timeout = min(found.smtp_timeout or SMTP_TIMEOUT, SMTP_TIMEOUT)
    health = Health(run_checks(found, lookup, smtp_timeout=timeout), datetime.now(UTC))
    data = {
        "checks": [c.as_dict() for c in health.checks],
        "checked_at": health.checked_at.isoformat(),
    }
    try:
        get_redis().set(CACHE_KEY, json.dumps(data), ex=CACHE_SECONDS)
        # Preflight's SPF, DKIM and DMARC verdict is asked again too (a fixed record shows).
        get_redis().delete(mail_setup.KEY)
    except redis.RedisError:
        log.warning("doctor cache unavailable", exc_info=True)
    return health


@bp.app_context_processor
def _template_helpers() -> dict[str, Any]:
    # A function, so only a template that shows the health line reads the cache.
    return {"sending_health": cached_health}


@bp.get("/doctor")
@login_required
def doctor_page() -> Any:
    """Show each check: the settings, the relay, SPF, DKIM, DMARC and the bounce address."""
    health = cached_health() or fresh_health()
    return render_template("editor/doctor.html", health=health, cache_minutes=CACHE_SECONDS // 60)


@bp.post("/doctor")
@login_required
def check_again() -> Any:
    """Run the checks again now, whatever the cache holds."""
    fresh_health()
    return redirect(url_for("doctor.doctor_page"))
