"""Read the CSV files people bring from other tools, as they come: no editing of the file.

A file is decoded (UTF-8 with or without a BOM, UTF-16 with one, else Latin-1/Windows-1252),
its delimiter found from the header row (comma, semicolon or tab), and each header named by
what it becomes here: the exports of Mailchimp (``Email Address``, ``First Name``, ``Last
Name``, ``TAGS``, and the ``UNSUB_TIME``/``CLEAN_TIME`` of its unsubscribed and cleaned
files), Substack (``email``, ``created_at``, ``email_disabled``), Buttondown (``email``,
``tags``, ``subscriber_type``, ``unsubscription_date``), listmonk (``email``, ``name``,
``status``) and this service's own export (``status``, ``tags``). A row's status words are
read into ours: whatever says the person left (unsubscribed, cleaned, bounced, blocklisted,
complained …) makes them a suppressed person here.
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime

from newsletter.errors import Invalid
from newsletter.models import SubscriberStatus, utcnow

S = SubscriberStatus

# A field longer than this is no name or address: the row is reported and skipped.
MAX_FIELD = 128 * 1024
DELIMITERS = (",", ";", "\t")

# Header (lower-cased, spaces, dashes and dots as underscores) -> what the column becomes.
ROLE_OF_HEADER = {
    "email": "email",
    "email_address": "email",
    "e_mail": "email",
    "e_mail_address": "email",
    "emailaddress": "email",
    "name": "name",
    "full_name": "name",
    "first_name": "first_name",
    "firstname": "first_name",
    "fname": "first_name",
    "last_name": "last_name",
    "lastname": "last_name",
    "lname": "last_name",
    "tags": "tags",
    "tag": "tags",
    "status": "status",
    "subscriber_type": "status",
    "created_at": "created_at",
    "optin_time": "created_at",
    "creation_date": "created_at",
    "date_added": "created_at",
    "subscribed_at": "created_at",
    "unsub_time": "unsubscribed_at",
    "unsubscription_date": "unsubscribed_at",
    "unsubscribed_at": "unsubscribed_at",
    "clean_time": "cleaned_at",
    "email_disabled": "email_disabled",
}

# What each role is called on the column-mapping page.
ROLE_TEXT = {
    "email": "email address",
    "name": "name",
    "first_name": "first name",
    "last_name": "last name",
    "tags": "tags",
    "status": "status (who left is kept out)",
    "created_at": "sign-up date",
    "unsubscribed_at": "unsubscribed when (set: kept out)",
    "cleaned_at": "cleaned when (set: bounced, kept out)",
    "email_disabled": "mail disabled (true: kept out)",
    None: "not imported",
}

# Status words of every tool -> ours. None: an ordinary row (confirmed only with --confirmed).
STATUS_WORDS: dict[str, SubscriberStatus | None] = {
    "": None,
    "confirmed": None,
    "subscribed": None,
    "enabled": None,
    "active": None,
    "regular": None,
    "premium": None,
    "gifted": None,
    "trialed": None,
    "churned": None,
    "paid": None,
    "free": None,
    "comp": None,
    "unpaid": None,
    "past_due": None,
    "paused": None,
    "pending": S.PENDING,
    "unconfirmed": S.PENDING,
    "unactivated": S.PENDING,
    "unsubscribed": S.UNSUBSCRIBED,
    "removed": S.UNSUBSCRIBED,
    "complained": S.UNSUBSCRIBED,
    "spammy": S.UNSUBSCRIBED,
    "blocked": S.UNSUBSCRIBED,
    "blocklisted": S.UNSUBSCRIBED,
    "blacklisted": S.UNSUBSCRIBED,
    "disabled": S.UNSUBSCRIBED,
    "bounced": S.BOUNCED,
    "cleaned": S.BOUNCED,
    "undeliverable": S.BOUNCED,
}
TRUE_WORDS = {"true", "yes", "1", "y", "t"}


class ImportFormatError(Invalid):
    """The file as a whole is not a usable CSV (no header, no email column, not text)."""

    def __init__(self, message: str) -> None:
        super().__init__("file", message)


def decode(data: bytes) -> str:
    """Return the file's text: UTF-8 (a BOM is dropped), UTF-16 with a BOM, else Latin-1."""
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        try:
            return data.decode("utf-16")
        except UnicodeDecodeError:
            raise ImportFormatError("The file says it is UTF-16 but is not.") from None
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        # Excel's "CSV" on Windows: Windows-1252, of which Latin-1 reads every byte.
        try:
            text = data.decode("cp1252")
        except UnicodeDecodeError:
            text = data.decode("latin-1")
    if "\0" in text:
        raise ImportFormatError("That file is not a CSV text file.")
    return text


def _header_key(raw: str) -> str:
    return re.sub(r"[\s.\-]+", "_", raw.strip().lower()).strip("_")


def _delimiter(text: str) -> str:
    first = text.lstrip("\ufeff").split("\n", 1)[0]
    # Count outside quotes: a quoted header may hold a comma.
    bare = re.sub(r'"[^"]*"', "", first)
    counts = {d: bare.count(d) for d in DELIMITERS}
    best = max(DELIMITERS, key=lambda d: counts[d])
    return best if counts[best] else ","


@dataclass(frozen=True)
class Columns:
    """The header row as found, and what each column becomes."""

    headers: list[str]
    roles: list[str | None]
    delimiter: str

    def described(self) -> list[tuple[str, str]]:
        """Return (header, what it becomes) for each column, for the mapping page."""
        return [(h, ROLE_TEXT[r]) for h, r in zip(self.headers, self.roles, strict=True)]


def columns_of(headers: list[str], delimiter: str) -> Columns:
    """Name each header's role; raise ImportFormatError for no email column or a role twice."""
    roles: list[str | None] = []
    seen: dict[str, str] = {}
    for raw in headers:
        role = ROLE_OF_HEADER.get(_header_key(raw or ""))
        if role is not None and role in seen:
            raise ImportFormatError(
                f"The header row has two columns for the {ROLE_TEXT[role]} "
                f"('{seen[role][:40]}' and '{(raw or '').strip()[:40]}'): keep one and try again."
            )
        if role is not None:
            seen[role] = (raw or "").strip()
        roles.append(role)
    if "email" not in seen:
        raise ImportFormatError(
            "The header row has no email column (e.g. 'email' or Mailchimp's 'Email Address')."
        )
    return Columns([(h or "").strip() for h in headers], roles, delimiter)


@dataclass
class Row:
    """One data row, read into what it means here."""

    email: str
    name: str = ""
    tags: str = ""
    # None: an ordinary row; PENDING: never confirmed by an import; UNSUBSCRIBED or BOUNCED:
    # the person left, and stays out.
    status: SubscriberStatus | None = None
    status_note: str = ""
    created_at: datetime | None = None
    extra: dict[str, str] = field(default_factory=dict)


def read(text: str) -> tuple[Columns, Iterator[tuple[int, Row | str]]]:
    """Read CSV text: its columns, and (line number, the row or why it is skipped) for each row.

    Raises ImportFormatError, having read nothing more, when the header is unusable.
    """
    text = text.lstrip("\ufeff")
    delimiter = _delimiter(text)
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter)
    try:
        headers = next(reader, None)
    except csv.Error:
        raise ImportFormatError("The header row could not be read as CSV.") from None
    if not headers or not any(h.strip() for h in headers):
        raise ImportFormatError("The file is empty: expected a header row with an email column.")
    columns = columns_of(headers, delimiter)
    return columns, _rows(reader, columns)


def _rows(reader: Iterator[list[str]], columns: Columns) -> Iterator[tuple[int, Row | str]]:
    ended = getattr(reader, "line_num", 1)
    while True:
        try:
            cells = next(reader)
        except StopIteration:
            return
        except csv.Error:
            line = ended + 1
            ended = getattr(reader, "line_num", line)
            yield line, "A field is too long or its quotes do not close; the row was skipped."
            continue
        line = ended + 1
        ended = getattr(reader, "line_num", line)
        if not any(c.strip() for c in cells):
            continue  # a blank line, as spreadsheets leave at the end
        if any(len(c) > MAX_FIELD for c in cells):
            yield line, "A field is longer than 128 KB; the row was skipped."
            continue
        try:
            yield line, _row(cells, columns)
        except Invalid as exc:
            yield line, exc.message


def _unformula(value: str) -> str:
    # This service's export guards a formula-looking cell with a leading apostrophe: take it
    # off again, so that a round trip gives back what was stored.
    if len(value) > 1 and value[0] == "'" and value[1] in "=+-@\t\r":
        return value[1:]
    return value


def _row(cells: list[str], columns: Columns) -> Row:
    values: dict[str, str] = {}
    for role, cell in zip(columns.roles, cells, strict=False):
        if role is not None:
            values[role] = _unformula(cell.strip())
    name = values.get("name") or " ".join(
        p for p in (values.get("first_name", ""), values.get("last_name", "")) if p
    )
    row = Row(email=values.get("email", ""), name=name, tags=values.get("tags", ""))
    word = values.get("status", "").strip().lower()
    if word not in STATUS_WORDS:
        raise Invalid("status", f"Unknown status '{word[:30]}'; the row was skipped.")
    row.status = STATUS_WORDS[word]
    if row.status in (S.UNSUBSCRIBED, S.BOUNCED):
        row.status_note = f"{word} in the imported file"
    if values.get("unsubscribed_at"):
        row.status, row.status_note = S.UNSUBSCRIBED, "unsubscribed in the imported file"
    if values.get("cleaned_at"):
        row.status, row.status_note = S.BOUNCED, "cleaned in the imported file"
    if values.get("email_disabled", "").lower() in TRUE_WORDS:
        row.status, row.status_note = S.UNSUBSCRIBED, "mail disabled in the imported file"
    row.created_at = parse_when(values.get("created_at", ""))
    return row


def parse_when(raw: str) -> datetime | None:
    """Return a sign-up date as tools write it (ISO 8601, or "2024-03-01 10:00:00"), in UTC.

    A date without a zone is taken as UTC; one that cannot be read, or lies in the future,
    gives None (the import's own time is used).
    """
    raw = raw.strip()
    if not raw:
        return None
    try:
        when = datetime.fromisoformat(raw)
    except ValueError:
        return None
    when = when.replace(tzinfo=UTC) if when.tzinfo is None else when.astimezone(UTC)
    return when if when <= utcnow() else None


def split_tags(raw: str) -> list[str]:
    """Return the tag names of a cell: "a, b", or Mailchimp's quoted list ``"a","b"``."""
    if '"' in raw:
        try:
            return [t for t in next(csv.reader([raw], skipinitialspace=True)) if t.strip()]
        except (csv.Error, StopIteration):
            pass
    return [t for t in raw.split(",") if t.strip()]
