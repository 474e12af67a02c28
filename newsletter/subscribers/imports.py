"""CSV imports: read the rows, add or update each person, report bad rows by line number.

A browser import is an ImportJob row that holds the file; a worker runs it and reports
progress. The command line reads the same way and writes the same way.
"""

from __future__ import annotations

import csv
import io
import json
import logging
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.orm import Session

from newsletter.errors import Invalid
from newsletter.extensions import db
from newsletter.models import ImportJob, ImportStatus, SubscriberStatus, utcnow
from newsletter.subscribers.state import Action, get_or_create, reserve_confirmation, transition
from newsletter.subscribers.validate import clean_name, normalize_email

S = SubscriberStatus

log = logging.getLogger(__name__)

MAX_REPORTED_ERRORS = 1000
PROGRESS_EVERY = 200


def count_rows(text: str) -> int:
    """Return how many data rows the CSV holds (raises ImportFormatError if it has no header)."""
    return sum(1 for _ in read_csv_rows(text))


def run_import(import_id: int, notify: Callable[[int], None]) -> str:
    """Import the rows of one queued ImportJob, updating its progress as it goes.

    ``notify`` is called with each new pending subscriber's id once the rows are committed
    (the caller mails them a confirmation).
    """

    session = db.session
    # Claim the job with a conditional UPDATE: a doubled or re-delivered job does nothing.
    claimed = session.execute(
        sa.update(ImportJob)
        .where(ImportJob.id == import_id, ImportJob.status == ImportStatus.QUEUED)
        .values(status=ImportStatus.RUNNING)
    ).rowcount
    session.commit()
    if claimed != 1:
        return "skipped: not queued"
    job = session.get(ImportJob, import_id)
    assert job is not None
    text, confirmed = job.csv_text or "", job.confirmed
    try:
        total = count_rows(text)
        session.execute(
            sa.update(ImportJob).where(ImportJob.id == import_id).values(total_rows=total)
        )
        session.commit()

        def progress(report: ImportReport) -> None:
            session.execute(
                sa.update(ImportJob)
                .where(ImportJob.id == import_id)
                .values(done_rows=report.rows, added=report.added)
            )
            session.commit()

        report = import_rows(
            session,
            read_csv_rows(text),
            confirmed=confirmed,
            commit_every=PROGRESS_EVERY,
            progress=progress,
        )
        now = utcnow()
        to_mail = [sid for sid in report.to_confirm if reserve_confirmation(session, sid, now)]
        errors = [{"line": line, "message": msg} for line, msg in report.errors]
        session.execute(
            sa.update(ImportJob)
            .where(ImportJob.id == import_id)
            .values(
                status=ImportStatus.DONE,
                done_rows=report.rows,
                total_rows=report.rows,
                added=report.added,
                errors_json=json.dumps(
                    {
                        "errors": errors[:MAX_REPORTED_ERRORS],
                        "error_count": len(errors),
                        "confirmed": report.confirmed,
                        "unchanged": report.unchanged,
                        "confirmations": len(to_mail),
                    }
                ),
                csv_text=None,  # the file holds addresses; keep it no longer than needed
            )
        )
        session.commit()
    except ImportFormatError as exc:
        session.rollback()
        _fail(import_id, str(exc))
        return "failed"
    except Exception:
        session.rollback()
        log.exception("import %s failed", import_id)
        _fail(import_id, "The import stopped on an unexpected error; nothing after it was added.")
        raise
    for sid in to_mail:
        notify(sid)
    return f"imported {report.rows} rows"


def _fail(import_id: int, message: str) -> None:
    db.session.execute(
        sa.update(ImportJob)
        .where(ImportJob.id == import_id)
        .values(
            status=ImportStatus.FAILED,
            errors_json=json.dumps({"errors": [], "error_count": 0, "failure": message}),
            csv_text=None,
        )
    )
    db.session.commit()


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


@dataclass
class ImportReport:
    added: int = 0
    confirmed: int = 0
    unchanged: int = 0
    rows: int = 0
    errors: list[tuple[int, str]] = field(default_factory=list)
    # Pending subscribers who should be mailed a confirmation once the rows are committed.
    to_confirm: list[int] = field(default_factory=list)


class ImportFormatError(ValueError):
    """The file as a whole is not a usable CSV (no header, no email column, not UTF-8)."""


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


def import_rows(
    session: Session,
    rows: Iterable[tuple[int, dict[str, str]]],
    *,
    confirmed: bool,
    now: datetime | None = None,
    commit_every: int = 500,
    progress: object = None,
) -> ImportReport:
    """Add or update subscribers from CSV rows; bad rows are reported by line and skipped.

    Re-importing is harmless: existing people keep their status, except that ``confirmed``
    confirms a pending one. Nobody who unsubscribed or bounced is brought back.
    """
    report = ImportReport()
    now = now or utcnow()
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
            report.to_confirm.append(sub.id)
        elif not created:
            report.unchanged += 1
        if report.rows % commit_every == 0:
            session.commit()
            if callable(progress):
                progress(report)
    session.commit()
    if callable(progress):
        progress(report)
    return report
