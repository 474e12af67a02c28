"""The editor's words for what the database records in codes: a person's history."""

from __future__ import annotations

from newsletter.models import EventKind

KINDS = {
    EventKind.SUBSCRIBED: "Signed up",
    EventKind.CONFIRMATION_SENT: "Confirmation mail sent",
    EventKind.CONFIRMED: "Confirmed",
    EventKind.UNSUBSCRIBED: "Unsubscribed",
    EventKind.BOUNCED: "Bounced",
    EventKind.IMPORTED: "Imported",
    EventKind.EDITED: "Changed by an editor",
    EventKind.RENAMED: "Changed their name",
    EventKind.PAUSED: "Paused the tips",
    EventKind.RESUMED: "Took the tips up again",
    EventKind.ADDRESS_CHANGED: "Changed their address",
}
# The parts of a detail line (comma-separated) that are codes, not someone's words.
DETAILS = {
    "page": "on the unsubscribe page",
    "one-click": "with the one-click link in a mail",
    "too_many": "reason: too many emails",
    "not_relevant": "reason: not relevant to them",
    "never_signed_up": "reason: never signed up",
    "other": "reason: something else",
    "complaint": "marked a mail as spam",
    "api": "through the API",
    "import": "by an import",
    "form": "on the sign-up form",
    "embed": "on the form embedded on another site",
    "editor": "by an editor",
    "name (api)": "name, through the API",
}


def history(kind: EventKind | str, detail: str) -> tuple[str, str]:
    """Return a history line's 'what' and 'detail' in words; unknown codes stay as written."""
    try:
        what = KINDS[EventKind(kind)]
    except (ValueError, KeyError):
        what = str(kind).replace("_", " ")
    parts = [p.strip() for p in (detail or "").split(",") if p.strip()]
    if not parts or any(p not in DETAILS for p in parts):
        return what, detail or ""  # someone's own words (a diagnostic), shown as they are
    return what, "; ".join(DETAILS[p] for p in parts)
