"""`newsletter issues …`: create, list, send (now, later, test), status, pause, resume, cancel,
and import (the back catalogue)."""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

import click
from flask import Flask
from flask.cli import with_appcontext
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from newsletter.archive.sources import fetching_for, is_url, read_path, read_url
from newsletter.archive.store import import_entries
from newsletter.cli.errors import fail
from newsletter.errors import NewsletterError
from newsletter.extensions import db, settings
from newsletter.issues import preflight
from newsletter.issues.actions import create_issue, each_issue, issue_status, mark_ready
from newsletter.issues.segment import choose_segment, segment_of
from newsletter.models import ISSUE_EDITABLE, Issue, IssueStatus
from newsletter.services import mailer
from newsletter.tasks.dispatch import cancel_issue, pause_issue, resume_issue, send_issue, send_test

COUNTS = ("queued", "sent", "failed", "skipped")
STATUSES = click.Choice([s.value for s in IssueStatus])


@click.group("issues")
def issues_group() -> None:
    """Write, send and follow the weekly issues."""


@issues_group.command("create")
@click.option("--subject", required=True, help="The email's subject line.")
@click.option(
    "--body-file",
    required=True,
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="A Markdown file with the body.",
)
@click.option(
    "--preheader",
    default="",
    help="The line an inbox shows after the subject (hidden in the mail); unset, none.",
)
@with_appcontext
def create_command(subject: str, body_file: Path, preheader: str) -> None:
    """Create a draft issue; print its id on the last line."""
    try:
        body = body_file.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise click.ClickException(f"cannot read {body_file}: {exc}") from None
    try:
        issue = create_issue(subject, body, preheader)
    except NewsletterError as exc:
        raise fail(exc) from None
    click.echo(f"Created draft issue '{issue.subject}' (/archive/{issue.slug} once sent).")
    click.echo(str(issue.id))


@issues_group.command("list")
@click.option("--status", type=STATUSES, help="Only issues in this state.")
@with_appcontext
def list_command(status: str | None) -> None:
    """Print one issue a line, newest first: id, status, subject."""
    for issue_id, state, subject in each_issue(IssueStatus(status) if status else None):
        click.echo(f"{issue_id}\t{state.value}\t{subject}")


def _parse_at(raw: str) -> datetime:
    try:
        at = datetime.fromisoformat(raw)
    except ValueError:
        raise click.ClickException(
            f"--at: not an ISO-8601 date and time: {raw!r} (e.g. 2025-03-03T09:00+01:00)"
        ) from None
    if at.tzinfo is None:
        raise click.ClickException(
            f"--at: {raw!r} has no time zone; add one, e.g. {raw}+00:00 or {raw}Z"
        )
    return at


@issues_group.command("send")
@click.argument("issue_id", type=int)
@click.option("--at", "at_raw", help="Schedule at this ISO-8601 date and time (with a zone).")
@click.option("--test-to", help="Send one test copy to this address instead.")
@click.option(
    "--tag",
    "tags",
    multiple=True,
    help="Send only to the confirmed readers with this tag (repeatable: any of them).",
)
@with_appcontext
def send_command(
    issue_id: int, at_raw: str | None, test_to: str | None, tags: tuple[str, ...]
) -> None:
    """Queue an issue now, schedule it (--at), or send one test copy (--test-to)."""
    if at_raw and test_to:
        raise click.ClickException("use either --at or --test-to, not both")
    _preflight(issue_id)
    try:
        if test_to:
            send_test(issue_id, test_to)
            click.echo(f"Test copy of issue {issue_id} sent to {test_to}.")
            return
        at = _parse_at(at_raw) if at_raw else None
        # Every send says its audience: without --tag, every confirmed reader.
        segment = choose_segment(db.session(), issue_id, tags)
        db.session.commit()
        said = send_issue(issue_id, at)
        click.echo(said + (f" Segment: {', '.join(segment)}." if segment else ""))
    except NewsletterError as exc:
        raise fail(exc) from None


def _preflight(issue_id: int) -> None:
    """Print preflight's warnings to stderr; refuse on a failure (links: see the issue page)."""
    issue = db.session.get(Issue, issue_id)
    if issue is None or issue.status not in ISSUE_EDITABLE:
        return  # the action itself says there is no such issue, or that it went already
    report = preflight.check(issue, mailer())
    for finding in report.warnings:
        click.echo(f"warning: {finding.message}", err=True)
    if report.failures:
        raise click.ClickException("not sent: " + " ".join(f.message for f in report.failures))


@issues_group.command("ready")
@click.argument("issue_id", type=int)
@with_appcontext
def ready_command(issue_id: int) -> None:
    """Mark an issue ready for the next weekly slot."""
    try:
        click.echo(mark_ready(issue_id, settings().weekly_slot))
    except NewsletterError as exc:
        raise fail(exc) from None


def _simple(name: str, action: Callable[[int], str], doc: str) -> None:
    @issues_group.command(name, help=doc)
    @click.argument("issue_id", type=int)
    @with_appcontext
    def command(issue_id: int) -> None:
        try:
            click.echo(action(issue_id))
        except NewsletterError as exc:
            raise fail(exc) from None


_simple("pause", pause_issue, "Pause a send; nothing more leaves until resumed.")
_simple("resume", resume_issue, "Resume a paused send where it stopped.")
_simple("cancel", cancel_issue, "Cancel an issue; copies not yet sent are skipped.")


@issues_group.command("status")
@click.argument("issue_id", type=int)
@click.option("--watch", is_flag=True, help="Draw a progress bar until the send ends.")
@click.option("--interval", default=1.0, show_default=True, help="Seconds between updates.")
@with_appcontext
def status_command(issue_id: int, watch: bool, interval: float) -> None:
    """Print the state (with a paused send's reason), then queued, sent, failed, skipped.

    After the counts, an issue for a segment names its tags: ``segment TAG1, TAG2``.
    """
    try:
        found = issue_status(issue_id)
    except NewsletterError as exc:
        raise fail(exc) from None
    if watch:
        found = _watch(issue_id, found, max(interval, 0.1))
    _print_counts(found)
    segment = segment_of(db.session(), issue_id)
    if segment:
        click.echo(f"segment {', '.join(segment)}")


def _state_line(found: dict[str, Any]) -> str:
    """``state STATE``, and for a paused send ``: REASON`` (who paused it, or the relay)."""
    line = f"state {found['status']}"
    if found["status"] == IssueStatus.PAUSED.value:
        line += f": {found['pause_reason'] or 'paused'}"
    return line


def _relay_line(found: dict[str, Any]) -> str | None:
    """For a send waiting for its relay: that it retries by itself, when, and the last answer."""
    if not found.get("relay_waiting"):
        return None
    due = found.get("relay_retry_in")
    when = f"next try in {due} s" if due else "trying now"
    return f"relay unreachable, retrying by itself ({when}): {found['relay_error']}"


def _print_counts(found: dict[str, Any]) -> None:
    click.echo(_state_line(found))
    relay = _relay_line(found)
    if relay is not None:
        click.echo(relay)
    for key in COUNTS:
        click.echo(f"{key} {found[key]}")
    if found["sending"]:
        click.echo(f"sending {found['sending']}")
    click.echo(f"audience {found['audience']}")
    if found["possible_duplicates"]:
        click.echo(f"possible_duplicates {found['possible_duplicates']}")


def _watch(issue_id: int, found: dict[str, Any], interval: float) -> dict[str, Any]:

    columns = (
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.percentage:>3.0f}%"),
        TextColumn("{task.fields[rate]} msg/s"),
        TextColumn("ETA {task.fields[eta]}"),
        TimeElapsedColumn(),
    )
    with Progress(*columns, transient=False) as bar:
        task = bar.add_task(f"issue {issue_id}", total=max(found["audience"], 1), rate="-", eta="-")
        while True:
            bar.update(
                task,
                completed=found["done"],
                total=max(found["audience"], 1),
                description=f"issue {issue_id} {found['status']}",
                rate=f"{found['rate_per_s']:.1f}",
                eta=_eta(found["eta_seconds"]),
            )
            # Sent, paused, cancelled or never queued: nothing more will move; stop watching.
            if found["status"] not in ("sending", "scheduled"):
                break
            time.sleep(interval)
            db.session.remove()
            found = issue_status(issue_id)
    return found


def _eta(seconds: float | None) -> str:
    if seconds is None:
        return "?"
    seconds = int(seconds)
    return f"{seconds // 60}:{seconds % 60:02d}"


@issues_group.command("import")
@click.argument("source")
@with_appcontext
def import_command(source: str) -> None:
    """Bring in the back catalogue: an RSS/Atom feed (file or URL), a folder or ZIP of Markdown
    posts, or Medium's or Substack's export. Each post becomes an archived issue, never mailed;
    importing again adds nothing twice."""
    found = settings()
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn())
    with Progress(*columns, console=Console(stderr=True), transient=True) as bar:
        reading = bar.add_task("reading", total=None)
        try:
            if is_url(source):
                fetching = fetching_for(found)
                items = read_url(source, fetching, lambda n: bar.update(reading, completed=n))
            else:
                items = read_path(Path(source), lambda n: bar.update(reading, completed=n))
            saving = bar.add_task("saving", total=None)
            report = import_entries(
                db.session(),
                source,
                items,
                lambda done, total: bar.update(saving, completed=done, total=total),
            )
        except NewsletterError as exc:
            raise fail(exc) from None
    for line in report.lines():
        click.echo(line)


def register(app: Flask) -> None:
    """Add the `issues` command group to the app's CLI."""
    app.cli.add_command(issues_group)
