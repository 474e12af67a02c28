"""What an import would do, shown before it runs: each column's meaning, the first rows, and
how many people it would mail. Reads the file once, and the list a chunk of addresses at a time.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence
from dataclasses import dataclass, field

import sqlalchemy as sa
from sqlalchemy.orm import Session

from newsletter.errors import Invalid
from newsletter.models import Subscriber
from newsletter.subscribers.formats import Columns, Row, read, split_tags
from newsletter.subscribers.tags import parse_tags
from newsletter.subscribers.validate import normalize_email

SHOWN_ROWS = 5
_CHUNK = 500


@dataclass
class Preview:
    columns: Columns
    # The first rows as they are in the file, and what each becomes (or why it is skipped).
    first: list[tuple[list[str], Row | str]] = field(default_factory=list)
    rows: int = 0
    skipped: int = 0
    suppressed: int = 0
    new: int = 0  # addresses not on the list yet
    mails: int = 0  # confirmation mails the import would send (the limits may hold some back)


def preview_import(session: Session, text: str, *, confirmed: bool, tags: Sequence[str]) -> Preview:
    """Return what importing ``text`` would do; raises ImportFormatError for an unusable file."""
    columns, rows = read(text)
    preview = Preview(columns)
    raw = csv.reader(io.StringIO(text.lstrip("\ufeff"), newline=""), delimiter=columns.delimiter)
    next(raw, None)
    seen: set[str] = set()
    pending: dict[str, bool] = {}  # address -> would be mailed if new

    def settle() -> None:
        known = set(
            session.scalars(sa.select(Subscriber.email).where(Subscriber.email.in_(list(pending))))
        )
        for email, mailed in pending.items():
            if email not in known:
                preview.new += 1
                preview.mails += mailed and not confirmed
        pending.clear()

    for _line, row in rows:
        preview.rows += 1
        if len(preview.first) < SHOWN_ROWS:
            cells = _next_cells(raw)
            if not isinstance(row, str):
                shown = Row(**{**row.__dict__, "tags": ", ".join(split_tags(row.tags))})
                preview.first.append((cells, shown))
            else:
                preview.first.append((cells, row))
        if isinstance(row, str):
            preview.skipped += 1
            continue
        try:
            email = normalize_email(row.email)
            parse_tags([*tags, *split_tags(row.tags)])
        except Invalid as exc:
            preview.skipped += 1
            if preview.first and preview.first[-1][1] is not row and preview.rows <= SHOWN_ROWS:
                preview.first[-1] = (preview.first[-1][0], exc.message)
            continue
        if row.status is not None and row.status.value in ("unsubscribed", "bounced"):
            preview.suppressed += 1
        if email in seen:
            continue
        seen.add(email)
        pending[email] = row.status is None or row.status.value == "pending"
        if len(pending) >= _CHUNK:
            settle()
    if pending:
        settle()
    return preview


def _next_cells(raw: object) -> list[str]:
    try:
        while True:
            cells = next(raw)  # type: ignore[call-overload]
            if any(c.strip() for c in cells):
                return [c if len(c) <= 200 else c[:200] + "…" for c in cells]
    except (StopIteration, csv.Error):
        return []
