"""Stream subscribers out as CSV, a few thousand rows at a time (flat memory at any size)."""

from __future__ import annotations

import csv
from collections.abc import Iterator
from typing import TextIO

import sqlalchemy as sa

from newsletter.extensions import db
from newsletter.models import Subscriber
from newsletter.subscribers.search import carries, like_clause
from newsletter.subscribers.tags import tag_names

COLUMNS = ("email", "name", "status", "created_at", "confirmed_at", "unsubscribed_at", "source")
# Rows read at a time; each chunk's tags come in one more query.
CHUNK = 2000


class _Line:
    def __init__(self) -> None:
        self.value = ""

    def write(self, s: str) -> None:
        self.value = s


def csv_lines(
    *, status: str | None = None, search: str | None = None, tag: int | None = None
) -> Iterator[str]:
    """Yield the CSV export line by line: header first, then every matching subscriber."""
    line = _Line()
    writer = csv.writer(line)
    writer.writerow((*COLUMNS, "tags"))
    yield line.value
    columns = (Subscriber.id, *(getattr(Subscriber, c) for c in COLUMNS))
    query = sa.select(*columns).order_by(Subscriber.id)
    if status:
        query = query.where(Subscriber.status == status)
    if search:
        query = query.where(like_clause(search))
    if tag is not None:
        query = query.where(carries(tag))
    result = db.session.execute(query.execution_options(yield_per=CHUNK))
    for chunk in result.partitions():
        tags = tag_names(db.session(), [row[0] for row in chunk])
        for row in chunk:
            writer.writerow([*(_cell(v) for v in row[1:]), _cell(",".join(tags[row[0]]))])
            yield line.value


def _cell(value: object) -> str:
    if value is None:
        return ""
    if hasattr(value, "isoformat"):
        return value.isoformat()  # type: ignore[no-any-return]
    text = str(getattr(value, "value", value))
    # A spreadsheet must not run a formula from a subscriber's name.
    return "'" + text if text[:1] in ("=", "+", "-", "@", "\t", "\r") else text


def write_csv(out: TextIO, *, status: str | None = None) -> None:
    """Write the export to a text stream."""
    for chunk in csv_lines(status=status):
        out.write(chunk)
