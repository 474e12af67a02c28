"""An editor's time zone: any IANA name the system knows, kept on their account."""

from __future__ import annotations

import functools
from datetime import UTC, datetime
from zoneinfo import ZoneInfo, available_timezones

from sqlalchemy.orm import Session

from newsletter.errors import Invalid
from newsletter.models import Editor

# Offered first in the pickers (a short list to search); any other known name is taken when typed.
COMMON_ZONES = (
    "UTC",
    "Europe/London",
    "Europe/Dublin",
    "Europe/Lisbon",
    "Europe/Paris",
    "Europe/Berlin",
    "Europe/Amsterdam",
    "Europe/Zurich",
    "Europe/Vienna",
    "Europe/Madrid",
    "Europe/Rome",
    "Europe/Stockholm",
    "Europe/Warsaw",
    "Europe/Athens",
    "Europe/Helsinki",
    "Europe/Istanbul",
    "Europe/Kyiv",
    "Africa/Lagos",
    "Africa/Cairo",
    "Africa/Nairobi",
    "Africa/Johannesburg",
    "America/New_York",
    "America/Toronto",
    "America/Chicago",
    "America/Denver",
    "America/Los_Angeles",
    "America/Mexico_City",
    "America/Bogota",
    "America/Sao_Paulo",
    "America/Argentina/Buenos_Aires",
    "Asia/Dubai",
    "Asia/Kolkata",
    "Asia/Bangkok",
    "Asia/Singapore",
    "Asia/Shanghai",
    "Asia/Tokyo",
    "Asia/Seoul",
    "Australia/Perth",
    "Australia/Sydney",
    "Pacific/Auckland",
)
MAX_ZONE_LENGTH = 64


@functools.cache
def known_zones() -> frozenset[str]:
    """Return every IANA zone name the system's time zone database holds."""
    return frozenset(available_timezones())


def check_zone(name: str) -> ZoneInfo:
    """Return the zone called ``name``, or raise Invalid saying how to write one."""
    name = name.strip()
    if not name:
        raise Invalid("time_zone", "Enter a time zone, like Europe/Berlin or America/New_York.")
    if len(name) > MAX_ZONE_LENGTH or name not in known_zones():
        raise Invalid(
            "time_zone",
            "“%(name)s” is not a time zone: pick one from the list or type a name like "
            "Europe/Berlin or America/New_York.",
            name=name[:MAX_ZONE_LENGTH],
        )
    return ZoneInfo(name)


def zone_of(editor: Editor | None) -> ZoneInfo | None:
    """Return the zone the editor chose, or None when they have not (their browser's is used)."""
    if editor is None or not editor.time_zone or editor.time_zone not in known_zones():
        return None
    return ZoneInfo(editor.time_zone)


def set_time_zone(session: Session, editor: Editor, name: str) -> ZoneInfo | None:
    """Store ``name`` as the editor's zone after checking it; an empty name forgets it."""
    if not name.strip():
        editor.time_zone = None
        session.commit()
        return None
    zone = check_zone(name)
    editor.time_zone = zone.key
    session.commit()
    return zone


def local_text(moment: datetime, zone: ZoneInfo, *, date_only: bool = False) -> str:
    """Write ``moment`` as the editor reads it in ``zone``: "Mon 7 Dec 2026 19:08 Europe/Berlin"."""
    local = moment.astimezone(zone)
    if date_only:
        return f"{local:%Y-%m-%d}"
    return f"{local:%a} {local.day} {local:%b %Y %H:%M} {zone.key}"


def utc_text(moment: datetime) -> str:
    """Write ``moment`` in UTC, as the hover text beside a local time."""
    return f"{moment.astimezone(UTC):%Y-%m-%d %H:%M} UTC"
