"""CSV imports: read the rows, add or update each person, report bad rows by line number.

Every import, from the command line or from the browser, goes through ``import_csv``: the
same rows, the same rules, and the same reservation of each confirmation mail (the cooldown
and daily cap a sign-up has). A browser import is an ImportJob row that holds the file; a
worker runs it with ``run_import`` and reports progress.
"""

from __future__ import annotations

import csv
import io
import json
import logging
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any, cast

import sqlalchemy as sa
from sqlalchemy.orm import Session

from newsletter.errors import Invalid
from newsletter.models import ImportJob, ImportStatus, SubscriberStatus, utcnow
from newsletter.subscribers.state import Action, get_or_create, reserve_confirmation, transition
from newsletter.subscribers.validate import clean_name, normalize_email

S = SubscriberStatus

log = logging.getLogger(__name__)

MAX_REPORTED_ERRORS = 1000
# Rows between two commits (and two progress reports).
PROGRESS_EVERY = 200


@dataclass
class ImportReport:
    added: int = 0
    confirmed: int = 0
    unchanged: int = 0
    rows: int = 0
    errors: list[tuple[int, str]] = field(default_factory=list)
    # Pending subscribers whose confirmation mail was reserved (and committed): the caller
    # hands exactly these to the mail queue.
    to_confirm: list[int] = field(default_factory=list)


Progress = Callable[[ImportReport], None]


class ImportFormatError(Invalid):
    """The file as a whole is not a usable CSV (no header, no email column, not UTF-8)."""

    def __init__(self, message: str) -> None:
        super().__init__("file", message)


def read_csv_rows(text: str) -> Iterator[tuple[int, dict[str, str]]]:
    """Yield (line number, row) from CSV text with a header row that has an email column."""
    reader = csv.DictReader(io.StringIO(text.lstrip("\ufeff"), newline=""))
    if reader.fieldnames is None:
        raise ImportFormatError("The file is empty: expected a header row with email and name.")
    reader.fieldnames = [(f or "").strip().lower() for f in reader.fieldnames]
    if "email" not in reader.fieldnames:
        raise ImportFormatError("The header row has no 'email' column.")
    # Report the line a row starts on: a quoted field may span several lines.
    ended = reader.line_num
    for row in reader:
        yield ended + 1, row
        ended = reader.line_num


def count_rows(text: str) -> int:
    """Return how many data rows the CSV holds (raises ImportFormatError if it has no header)."""
    return sum(1 for _ in read_csv_rows(text))


def import_csv(
    session: Session, text: str, *, confirmed: bool, progress: Progress | None = None
) -> ImportReport:
    """Import CSV text: add or update each person, commit, and reserve the confirmation mails.

    Bad rows are reported by line and skipped. Re-importing is harmless: existing people keep
    their status, except that ``confirmed`` confirms a pending one; nobody who unsubscribed or
    bounced is brought back. Without ``confirmed``, each new person's confirmation is reserved
    as a sign-up's is (``reserve_confirmation``); ``report.to_confirm`` lists those reserved.
    Raises ImportFormatError, having changed nothing, when the file as a whole is unusable.
    """
    report, new_pending = _import_rows(
        session, read_csv_rows(text), confirmed=confirmed, progress=progress
    )
    now = utcnow()
    report.to_confirm = [sid for sid in new_pending if reserve_confirmation(session, sid, now)]
    session.commit()
    return report


def _import_rows(
    session: Session,
    rows: Iterable[tuple[int, dict[str, str]]],
    *,
    confirmed: bool,
    progress: Progress | None,
) -> tuple[ImportReport, list[int]]:
    """Add or update subscribers from CSV rows; return the report and the new pending ids."""
    report = ImportReport()
    new_pending: list[int] = []
    now = utcnow()
    for line, row in rows:
        report.rows += 1
        try:
            email = normalize_email(row.get("email"))
            name = clean_name(row.get("name") or "")
        except Invalid as exc:
            report.errors.append((line, exc.message))
            continue
        sub, created = get_or_create(session, email, name, None, "import", now)
        if created:
            report.added += 1
        if confirmed and sub.status is S.PENDING:
            transition(session, sub, Action.IMPORT_CONFIRMED, detail="import", now=now)
            report.confirmed += 1
        elif not confirmed and sub.status is S.PENDING and created:
            new_pending.append(sub.id)
        elif not created:
            report.unchanged += 1
        if report.rows % PROGRESS_EVERY == 0:
            session.commit()
            if progress is not None:
                progress(report)
    session.commit()
    if progress is not None:
        progress(report)
    return report, new_pending


def run_import(session: Session, import_id: int, notify: Callable[[int], None]) -> str:
    """Import the rows of one queued ImportJob, updating its progress as it goes.

    ``notify`` is called, once everything is committed, with the id of each new pending
    subscriber whose confirmation ``import_csv`` reserved (the caller queues the mail).
    """
    # Claim the job with a conditional UPDATE: a doubled or re-delivered job does nothing.
    claimed = _update(
        session,
        sa.update(ImportJob)
        .where(ImportJob.id == import_id, ImportJob.status == ImportStatus.QUEUED)
        .values(status=ImportStatus.RUNNING),
    )
    session.commit()
    if claimed != 1:
        return "skipped: not queued"
    job = session.get(ImportJob, import_id)
    assert job is not None
    text, confirmed = job.csv_text or "", job.confirmed
    this_job = sa.update(ImportJob).where(ImportJob.id == import_id)
    try:
        _update(session, this_job.values(total_rows=count_rows(text)))
        session.commit()

        def progress(report: ImportReport) -> None:
            _update(session, this_job.values(done_rows=report.rows, added=report.added))
            session.commit()

        report = import_csv(session, text, confirmed=confirmed, progress=progress)
        errors = [{"line": line, "message": msg} for line, msg in report.errors]
        details = {
            "errors": errors[:MAX_REPORTED_ERRORS],
            "error_count": len(errors),
            "confirmed": report.confirmed,
            "unchanged": report.unchanged,
            "confirmations": len(report.to_confirm),
        }
        _update(
            session,
            this_job.values(
                status=ImportStatus.DONE,
                done_rows=report.rows,
                total_rows=report.rows,
                added=report.added,
                errors_json=json.dumps(details),
                csv_text=None,  # the file holds addresses; keep it no longer than needed
            ),
        )
        session.commit()
    except ImportFormatError as exc:
        session.rollback()
        _fail(session, import_id, exc.message)
        return "failed"
    except Exception:
        session.rollback()
        log.exception("import %s failed", import_id)
        _fail(
            session,
            import_id,
            "The import stopped on an unexpected error; nothing after it was added.",
        )
        raise
    for sid in report.to_confirm:
        notify(sid)
    return f"imported {report.rows} rows"


def _update(session: Session, statement: sa.Update) -> int:
    """Run an UPDATE; return how many rows it changed."""
    return cast("sa.CursorResult[Any]", session.execute(statement)).rowcount


def _fail(session: Session, import_id: int, message: str) -> None:
    _update(
        session,
        sa.update(ImportJob)
        .where(ImportJob.id == import_id)
        .values(
            status=ImportStatus.FAILED,
            errors_json=json.dumps({"errors": [], "error_count": 0, "failure": message}),
            csv_text=None,
        ),
    )
    session.commit()


def import_report(job: ImportJob) -> dict[str, object]:
    """Return the job's progress and report as plain JSON values."""
    try:
        details = json.loads(job.errors_json or "{}")
    except ValueError:
        details = {}
    if isinstance(details, list):  # the column's default before a run
        details = {"errors": details, "error_count": len(details)}
    total, done = job.total_rows, job.done_rows
    return {
        "id": job.id,
        "filename": job.filename,
        "status": job.status.value,
        "confirmed": job.confirmed,
        "total_rows": total,
        "done_rows": done,
        "percent": 100
        if job.status is ImportStatus.DONE
        else (min(100, done * 100 // total) if total else 0),
        "added": job.added,
        "errors": details.get("errors", []),
        "error_count": details.get("error_count", 0),
        "confirmed_now": details.get("confirmed", 0),
        "unchanged": details.get("unchanged", 0),
        "confirmations": details.get("confirmations", 0),
        "failure": details.get("failure", ""),
    }
