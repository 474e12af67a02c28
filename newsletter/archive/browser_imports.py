"""The editor's imports from the browser: stored, then run by a worker, then reported.

The request stores what to import (the uploaded file, or the URL) as a ``CatalogueImport``
and a worker runs it: ``claim`` takes a queued import with a conditional UPDATE (one run per
claim), ``run`` reads the source and adds its entries all or nothing (``store``), and keeps
the report or the reason nothing was imported. The file is dropped once the run is over.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

from newsletter.archive.entry import Skipped
from newsletter.archive.sources import Fetching, Tick, read_bytes, read_url
from newsletter.archive.store import Progress, Report, import_entries
from newsletter.archive.tables import CatalogueImport
from newsletter.errors import NewsletterError
from newsletter.models import utcnow

QUEUED, RUNNING, DONE, FAILED = "queued", "running", "done", "failed"
SHOWN_SKIPS = 200
UNEXPECTED = (
    "The import stopped on an unexpected error (the worker's log has it); nothing was imported."
)

log = logging.getLogger(__name__)


def create(session: Session, source: str, *, url: str = "", data: bytes | None = None) -> int:
    """Store an import for a worker; return its id. The caller commits, then queues it."""
    row = CatalogueImport(source=source[:1000], url=url, data=data)
    session.add(row)
    session.flush()
    return row.id


def claim(session: Session, import_id: int, now: datetime | None = None) -> int | None:
    """Take a queued import for this run; return its attempt number, None if not queued."""
    taken = session.execute(
        sa.update(CatalogueImport)
        .where(CatalogueImport.id == import_id, CatalogueImport.status == QUEUED)
        .values(status=RUNNING, attempt=CatalogueImport.attempt + 1, claimed_at=now or utcnow())
        .execution_options(synchronize_session=False)
    )
    session.commit()
    if getattr(taken, "rowcount", 0) != 1:
        return None
    return session.scalar(sa.select(CatalogueImport.attempt).where(CatalogueImport.id == import_id))


def run(
    session: Session,
    import_id: int,
    attempt: int,
    fetching: Fetching,
    tick: Tick | None = None,
    progress: Progress | None = None,
) -> str:
    """Read the claimed import's source and add its entries; keep the report or the error."""
    row = session.get(CatalogueImport, import_id)
    if row is None or row.status != RUNNING or row.attempt != attempt:
        session.commit()
        return "taken back"
    source, url, data = row.source, row.url, row.data or b""
    session.commit()
    outcome: dict[str, Any]
    try:
        items = read_url(url, fetching, tick) if url else read_bytes(source, data, tick)
        report = import_entries(session, source, items, progress)
        outcome = {"status": DONE, "report_json": json.dumps(_as_json(report))}
    except NewsletterError as exc:
        session.rollback()
        outcome = {"status": FAILED, "error": exc.message[:1000]}
    except Exception:  # a bug or a database error: said on the page, not retried for ever
        session.rollback()
        log.exception("import %s of %s failed", import_id, source)
        outcome = {"status": FAILED, "error": UNEXPECTED}
    session.execute(
        sa.update(CatalogueImport)
        .where(CatalogueImport.id == import_id, CatalogueImport.attempt == attempt)
        .values(data=None, finished_at=utcnow(), **outcome)
        .execution_options(synchronize_session=False)
    )
    session.commit()
    return str(outcome["status"])


def _as_json(report: Report) -> dict[str, Any]:
    return {
        "added": len(report.added),
        "already": report.already,
        "skipped": len(report.skipped),
        "skips": [[s.name, s.reason] for s in report.skipped[:SHOWN_SKIPS]],
    }


@dataclass
class Shown:
    """What the editor's page shows of an import."""

    id: int
    source: str
    status: str
    error: str
    added: int = 0
    already: int = 0
    skipped: int = 0
    skips: list[Skipped] = field(default_factory=list)

    @property
    def finished(self) -> bool:
        return self.status in (DONE, FAILED)


def shown(session: Session, import_id: int) -> Shown | None:
    """Return an import as the page shows it, or None if there is no such import."""
    row = session.get(CatalogueImport, import_id)
    if row is None:
        return None
    out = Shown(row.id, row.source, row.status, row.error)
    if row.report_json:
        report = json.loads(row.report_json)
        out.added, out.already, out.skipped = report["added"], report["already"], report["skipped"]
        out.skips = [Skipped(name, reason) for name, reason in report["skips"]]
    return out


def lost(
    session: Session, now: datetime, grace: timedelta, timeout: timedelta
) -> list[tuple[int, int]]:
    """Put back imports whose run died; return (id, attempt) of those queued over ``grace``.

    A run claimed longer ago than ``timeout`` was stopped (or its worker died): it is queued
    again. The caller enqueues the ids it returns (their job may have been lost).
    """
    session.execute(
        sa.update(CatalogueImport)
        .where(CatalogueImport.status == RUNNING, CatalogueImport.claimed_at < now - timeout)
        .values(status=QUEUED)
        .execution_options(synchronize_session=False)
    )
    session.commit()
    rows = session.execute(
        sa.select(CatalogueImport.id, CatalogueImport.attempt).where(
            CatalogueImport.status == QUEUED, CatalogueImport.created_at < now - grace
        )
    ).all()
    session.commit()
    return [(i, a) for i, a in rows]
