"""Browser CSV imports: an ImportJob row holds the file; a worker runs it and reports progress."""

from __future__ import annotations

import json
import logging

import sqlalchemy as sa

from .extensions import db
from .models import ImportJob, ImportStatus, utcnow
from .subscriptions import (
    ImportFormatError,
    ImportReport,
    import_rows,
    read_csv_rows,
    reserve_confirmation,
)

log = logging.getLogger(__name__)

MAX_REPORTED_ERRORS = 1000
PROGRESS_EVERY = 200


def count_rows(text: str) -> int:
    """Return how many data rows the CSV holds (raises ImportFormatError if it has no header)."""
    return sum(1 for _ in read_csv_rows(text))


def run_import(import_id: int) -> str:
    """Import the rows of one queued ImportJob, updating its progress as it goes (RQ job)."""
    from .jobs import send_confirmation
    from .queues import MAIL_QUEUE, enqueue

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
        enqueue(send_confirmation, sid, queue=MAIL_QUEUE)
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
