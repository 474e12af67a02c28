"""CSV imports: read the rows, add or update each person, report bad rows by line number.

Every import, from the command line or from the browser, goes through ``import_csv``: the
same rows, the same rules, and the same reservation of each confirmation mail (the mailbox
limits a sign-up has). A browser import is an ImportJob row that holds the file; a worker
runs it with ``run_import`` and reports progress. Rows, their confirmations and the progress
are committed together, every PROGRESS_EVERY rows: an import whose worker died carries on
from its last progress report, and nothing before it is done twice.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from itertools import islice

import sqlalchemy as sa
from sqlalchemy.orm import Session

from newsletter.errors import Invalid
from newsletter.models import (
    ImportJob,
    ImportStatus,
    SubscriberStatus,
    refresh_statistics,
    rowcount,
    utcnow,
)
from newsletter.subscribers.formats import ImportFormatError, Row, read, split_tags
from newsletter.subscribers.signup import get_or_create, reserve_confirmation
from newsletter.subscribers.state import Action, transition
from newsletter.subscribers.tags import add_tags, parse_tags
from newsletter.subscribers.validate import clean_name, normalize_email

__all__ = ["ImportFormatError", "ImportReport", "import_csv", "read_csv_rows", "run_import"]

S = SubscriberStatus

log = logging.getLogger(__name__)

MAX_REPORTED_ERRORS = 1000
# Rows between two commits (and two progress reports), and the most seconds between two
# progress reports: each is the heartbeat that tells the reconciler the worker is alive.
PROGRESS_EVERY = 200
PROGRESS_SECONDS = 1.0


@dataclass
class ImportReport:
    added: int = 0
    confirmed: int = 0
    unchanged: int = 0
    suppressed: int = 0  # rows the file marks as gone: kept, never mailed
    rows: int = 0
    errors: list[tuple[int, str]] = field(default_factory=list)
    # Pending subscribers whose confirmation mail this run reserved (and committed): the
    # caller hands exactly these to the mail queue, with ``reserved_at``.
    to_confirm: list[int] = field(default_factory=list)
    reserved_at: datetime = field(default_factory=utcnow)
    # What an earlier, interrupted run of the same import did beyond the lists above.
    earlier_errors: int = 0
    earlier_confirmations: int = 0

    @property
    def error_count(self) -> int:
        return len(self.errors) + self.earlier_errors

    @property
    def confirmations(self) -> int:
        return len(self.to_confirm) + self.earlier_confirmations


Progress = Callable[[ImportReport], None]


def read_csv_rows(text: str) -> Iterator[tuple[int, Row | str]]:
    """Yield (line number, row or why it is skipped) of CSV text in any format ``formats`` reads.

    Raises ImportFormatError at once when the header row is unusable.
    """
    return read(text)[1]


def count_rows(text: str) -> int:
    """Return how many data rows the CSV holds (raises ImportFormatError if it has no header)."""
    return sum(1 for _ in read_csv_rows(text))


def import_csv(
    session: Session,
    text: str,
    *,
    confirmed: bool,
    tags: Sequence[str] = (),
    progress: Progress | None = None,
    resume: ImportReport | None = None,
) -> ImportReport:
    """Import CSV text: add or update each person and reserve the confirmation mails.

    Bad rows are reported by line and skipped. Re-importing is harmless: existing people keep
    their status, except that ``confirmed`` confirms a pending one; nobody who unsubscribed or
    bounced is brought back. A row the file marks as unsubscribed, cleaned, bounced or
    blocklisted is kept as such (suppressed: never mailed, never confirmed by an import), and
    a row marked pending is never confirmed. ``tags`` (clean names) go on every row, with the
    row's own. The file's sign-up dates are kept for new people. Without ``confirmed``, each
    new person's confirmation is reserved as a sign-up's is (``reserve_confirmation``);
    ``report.to_confirm`` lists those reserved.
    ``progress`` is called every PROGRESS_EVERY rows and at the end, and must commit; without
    it the rows are committed there. ``resume`` is the report of an interrupted run of the
    same text: its rows are skipped. Raises ImportFormatError, having changed nothing, when
    the file as a whole is unusable.
    """
    report = resume or ImportReport()
    rows = read_csv_rows(text)
    _import_rows(
        session,
        islice(rows, report.rows, None) if report.rows else rows,
        report,
        confirmed=confirmed,
        tags=tags,
        progress=progress or (lambda _report: session.commit()),
    )
    return report


def _import_rows(
    session: Session,
    rows: Iterable[tuple[int, Row | str]],
    report: ImportReport,
    *,
    confirmed: bool,
    tags: Sequence[str],
    progress: Progress,
) -> None:
    """Add or update subscribers from CSV rows, counting them in ``report``."""
    now = report.reserved_at = utcnow()
    reported = time.monotonic()
    for line, row in rows:
        _import_row(session, line, row, report, confirmed=confirmed, tags=tags, now=now)
        if report.rows % PROGRESS_EVERY == 0 or time.monotonic() - reported >= PROGRESS_SECONDS:
            progress(report)
            reported = time.monotonic()
    progress(report)


def _import_row(
    session: Session,
    line: int,
    row: Row | str,
    report: ImportReport,
    *,
    confirmed: bool,
    tags: Sequence[str],
    now: datetime,
) -> None:
    report.rows += 1
    if isinstance(row, str):
        report.errors.append((line, row))
        return
    try:
        email = normalize_email(row.email)
        name = clean_name(row.name)
        names = parse_tags([*tags, *split_tags(row.tags)])
    except Invalid as exc:
        report.errors.append((line, exc.message))
        return
    # One savepoint per row: a row refused half-way (too many tags) leaves nothing behind.
    savepoint = session.begin_nested()
    try:
        _apply_row(session, email, name, names, row, report, confirmed=confirmed, now=now)
    except Invalid as exc:
        savepoint.rollback()
        report.errors.append((line, exc.message))
        return
    savepoint.commit()


def _apply_row(
    session: Session,
    email: str,
    name: str,
    names: list[str],
    row: Row,
    report: ImportReport,
    *,
    confirmed: bool,
    now: datetime,
) -> None:
    sub, created = get_or_create(session, email, name, None, "import", now)
    if created:
        report.added += 1
        if row.created_at is not None:
            sub.created_at = row.created_at
    add_tags(session, sub.id, names, by="import")
    if row.status in (S.UNSUBSCRIBED, S.BOUNCED):
        # The file says they left: they stay out, whatever else this import is told.
        action = Action.UNSUBSCRIBE if row.status is S.UNSUBSCRIBED else Action.BOUNCE
        if transition(session, sub, action, detail=row.status_note, now=now):
            report.suppressed += 1
        elif not created:
            report.unchanged += 1
        return
    if confirmed and sub.status is S.PENDING and row.status is not S.PENDING:
        transition(session, sub, Action.IMPORT_CONFIRMED, detail="import", now=now)
        report.confirmed += 1
    elif not confirmed and sub.status is S.PENDING and created:
        # Editors' imports are no flood: only the mailbox limits apply, not the domain's.
        sid = sub.id
        if reserve_confirmation(session, sid, email, now, record=True, per_domain=False):
            report.to_confirm.append(sid)
    elif not created:
        report.unchanged += 1


class TakenBack(Exception):
    """The reconciler handed this import to another run (its worker looked dead)."""


def run_import(session: Session, import_id: int, notify: Callable[[int, datetime], None]) -> str:
    """Import the rows of one queued ImportJob, updating its progress as it goes.

    Each run claims the job with a conditional UPDATE that raises ``attempt``; every progress
    commit is conditional on that attempt, so a run the reconciler took back stops at its
    next commit, having committed nothing since its last report. A run after one that died
    skips the rows that one committed. ``notify`` is called, once everything is committed,
    with the id and reservation time of each new pending subscriber whose confirmation this
    run reserved (the caller queues the mail; the reconciler queues any a dead run left).
    """
    claimed = rowcount(
        session.execute(
            sa.update(ImportJob)
            .where(ImportJob.id == import_id, ImportJob.status == ImportStatus.QUEUED)
            .values(
                status=ImportStatus.RUNNING, attempt=ImportJob.attempt + 1, heartbeat_at=utcnow()
            )
        )
    )
    session.commit()
    if claimed != 1:
        return "skipped: not queued"
    job = session.get(ImportJob, import_id)
    assert job is not None
    text, confirmed, attempt = job.csv_text or "", job.confirmed, job.attempt
    tags = [t for t in (job.tags or "").split(",") if t]
    resume = _earlier_run(job) if job.done_rows else None
    session.commit()  # end the read: SQLite holds its write lock for the whole transaction
    this_run = sa.update(ImportJob).where(
        ImportJob.id == import_id,
        ImportJob.status == ImportStatus.RUNNING,
        ImportJob.attempt == attempt,
    )

    def write(**values: object) -> None:
        if rowcount(session.execute(this_run.values(heartbeat_at=utcnow(), **values))) != 1:
            raise TakenBack
        session.commit()

    try:
        write(total_rows=count_rows(text))

        def progress(report: ImportReport) -> None:
            write(
                done_rows=report.rows, added=report.added, errors_json=json.dumps(_details(report))
            )

        report = import_csv(
            session, text, confirmed=confirmed, tags=tags, progress=progress, resume=resume
        )
        write(
            status=ImportStatus.DONE,
            done_rows=report.rows,
            total_rows=report.rows,
            errors_json=json.dumps(_details(report)),
            csv_text=None,  # the file holds addresses; keep it no longer than needed
        )
        if report.added:
            # A list imported and sent the same day: the snapshot and the claims plan on these.
            refresh_statistics(session, "subscriber")
            session.commit()
    except TakenBack:
        session.rollback()
        log.warning("import %s attempt %s was taken back; stopping", import_id, attempt)
        return "stopped: taken back"
    except ImportFormatError as exc:
        session.rollback()
        _fail(session, this_run, exc.message)
        return "failed"
    except Exception:
        session.rollback()
        log.exception("import %s failed", import_id)
        _fail(
            session,
            this_run,
            "The import stopped on an unexpected error; nothing after it was added.",
        )
        raise
    for sid in report.to_confirm:
        notify(sid, report.reserved_at)
    return f"imported {report.rows} rows"


def _details(report: ImportReport) -> dict[str, object]:
    errors = [{"line": line, "message": msg} for line, msg in report.errors]
    return {
        "errors": errors[:MAX_REPORTED_ERRORS],
        "error_count": report.error_count,
        "confirmed": report.confirmed,
        "unchanged": report.unchanged,
        "suppressed": report.suppressed,
        "confirmations": report.confirmations,
    }


def _earlier_run(job: ImportJob) -> ImportReport:
    """Rebuild the report of the rows an interrupted run committed, from its last progress."""
    try:
        details = json.loads(job.errors_json or "{}")
    except ValueError:
        details = {}
    if not isinstance(details, dict):
        details = {}
    errors = [
        (int(e["line"]), str(e["message"]))
        for e in details.get("errors", [])
        if isinstance(e, dict) and "line" in e and "message" in e
    ]
    return ImportReport(
        added=job.added,
        confirmed=int(details.get("confirmed", 0)),
        unchanged=int(details.get("unchanged", 0)),
        suppressed=int(details.get("suppressed", 0)),
        rows=job.done_rows,
        errors=errors,
        earlier_errors=max(0, int(details.get("error_count", 0)) - len(errors)),
        earlier_confirmations=int(details.get("confirmations", 0)),
    )


def _fail(session: Session, this_run: sa.Update, message: str) -> None:
    session.execute(
        this_run.values(
            status=ImportStatus.FAILED,
            errors_json=json.dumps({"errors": [], "error_count": 0, "failure": message}),
            csv_text=None,
        )
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
        "suppressed": details.get("suppressed", 0),
        "confirmations": details.get("confirmations", 0),
        "failure": details.get("failure", ""),
    }
