"""`newsletter subscribers import|export|list|remove`: the list from the command line."""

from __future__ import annotations

import sys
from pathlib import Path

import click
import sqlalchemy as sa
from flask import Flask
from flask.cli import with_appcontext

from newsletter.bounces.record import reactivate
from newsletter.cli.errors import fail
from newsletter.errors import Invalid, NewsletterError
from newsletter.extensions import db
from newsletter.models import Subscriber, SubscriberStatus
from newsletter.subscribers.editing import add_person, clean_reason, edit_person
from newsletter.subscribers.export import write_csv
from newsletter.subscribers.formats import decode
from newsletter.subscribers.imports import ImportFormatError, import_csv
from newsletter.subscribers.state import erase
from newsletter.subscribers.tags import parse_tags, tag_names
from newsletter.subscribers.validate import clean_name, normalize_email
from newsletter.tasks.mail import queue_confirmation

STATUSES = click.Choice([s.value for s in SubscriberStatus])


def register(app: Flask) -> None:
    """Attach the subscribers command group."""
    app.cli.add_command(subscribers)


@click.group("subscribers")
def subscribers() -> None:
    """Import, export, list and erase subscribers."""


@subscribers.command("import")
@click.argument("csv_file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option(
    "--confirmed",
    is_flag=True,
    help="These people already opted in elsewhere: no confirmation mail.",
)
@click.option("--tag", "tags", multiple=True, help="A tag every row gets (repeatable).")
@with_appcontext
def subscribers_import(csv_file: Path, confirmed: bool, tags: tuple[str, ...]) -> None:
    """Import subscribers from a CSV file with a header row and an email column.

    Also reads name and tags columns, and the exports of Mailchimp, Substack, Buttondown,
    listmonk and this service as they are; rows the file marks as unsubscribed, cleaned,
    bounced or blocklisted are kept as such and never mailed.
    """
    try:
        names = parse_tags(list(tags))
        text = decode(csv_file.read_bytes())
        report = import_csv(db.session(), text, confirmed=confirmed, tags=names)
    except ImportFormatError as exc:
        raise click.ClickException(f"{csv_file}: {exc.message}") from None
    except NewsletterError as exc:
        raise fail(exc) from None
    # import_csv reserved these confirmations (cooldown, daily cap): queue exactly those.
    for sid in report.to_confirm:
        queue_confirmation(sid, report.reserved_at)
    for line, message in report.errors:
        click.echo(f"line {line}: {message}", err=True)
    click.echo(
        f"{report.rows} rows: {report.added} added, {report.confirmed} confirmed, "
        f"{report.unchanged} already there, {report.suppressed} kept out as the file says, "
        f"{len(report.errors)} skipped"
        + (f", {_mails(len(report.to_confirm))} queued" if report.to_confirm else "")
    )


@subscribers.command("export")
@click.option("--status", type=STATUSES)
@with_appcontext
def subscribers_export(status: str | None) -> None:
    """Write subscribers as CSV to stdout (email, name, status, created_at, confirmed_at)."""
    write_csv(sys.stdout, status=status)


@subscribers.command("list")
@click.option("--status", type=STATUSES)
@with_appcontext
def subscribers_list(status: str | None) -> None:
    """Print one subscriber a line: email, status, name."""
    query = sa.select(Subscriber.email, Subscriber.status, Subscriber.name).order_by(Subscriber.id)
    if status:
        query = query.where(Subscriber.status == status)
    for email, st, name in db.session.execute(query.execution_options(yield_per=1000)):
        click.echo(f"{email}\t{st.value}\t{name}")


@subscribers.command("remove")
@click.argument("email")
@with_appcontext
def subscribers_remove(email: str) -> None:
    """Erase a person: every row holding their address or name."""
    try:
        address = normalize_email(email)
    except Invalid as exc:
        raise fail(exc) from None
    if not erase(db.session(), address):
        raise click.ClickException(f"no subscriber with the address {address}")
    db.session.commit()
    click.echo(f"erased {address}")


@subscribers.command("reactivate")
@click.argument("email")
@with_appcontext
def subscribers_reactivate(email: str) -> None:
    """Undo a person's bounces; a bounced address is confirmed again (kept in the history)."""
    try:
        address = normalize_email(email)
    except Invalid as exc:
        raise fail(exc) from None
    sub = db.session.scalar(sa.select(Subscriber).where(Subscriber.email == address))
    done = None if sub is None else reactivate(db.session(), sub.id, by="cli")
    if sub is None or done is None:
        raise click.ClickException(f"no subscriber with the address {address}")
    if not done.undone and not done.status_changed:
        db.session.rollback()
        if sub.confirmed_at is None:
            why = "only their own sign-up can bring it back"
            raise click.ClickException(f"{address} never confirmed; {why}")
        raise click.ClickException(f"{address} is {sub.status.value} with no bounce to undo")
    db.session.commit()
    click.echo(f"reactivated {address}: {sub.status.value}, {done.undone} bounces undone")


@subscribers.command("add")
@click.argument("email")
@click.option("--name", default="", help="Their name.")
@click.option("--tag", "tags", multiple=True, help="A tag to give them (repeatable).")
@click.option(
    "--confirmed",
    "reason",
    metavar="REASON",
    help="They opted in elsewhere: confirm them now; REASON is kept in their history.",
)
@with_appcontext
def subscribers_add(email: str, name: str, tags: tuple[str, ...], reason: str | None) -> None:
    """Add one person by hand; without --confirmed they get the confirmation mail."""
    try:
        address = normalize_email(email)
        sub, due = add_person(
            db.session(),
            address,
            clean_name(name),
            parse_tags(list(tags)),
            reason=None if reason is None else clean_reason(reason),
            by="cli",
        )
        db.session.commit()
    except NewsletterError as exc:
        raise fail(exc) from None
    if due is not None:
        queue_confirmation(sub.id, due)
        click.echo(f"added {address}: pending, confirmation mail queued")
    elif reason is not None:
        click.echo(f"added {address}: confirmed")
    else:
        click.echo(f"added {address}: pending (the mail limits held the confirmation back)")


@subscribers.command("tag")
@click.argument("email")
@click.argument("tags", nargs=-1)
@click.option("--remove", is_flag=True, help="Take these tags off instead.")
@with_appcontext
def subscribers_tag(email: str, tags: tuple[str, ...], remove: bool) -> None:
    """Give a person tags (or take them off with --remove); print the tags they now have."""
    try:
        address = normalize_email(email)
        sub = db.session.scalar(sa.select(Subscriber).where(Subscriber.email == address))
        if sub is None:
            raise click.ClickException(f"no subscriber with the address {address}")
        names = parse_tags(list(tags))
        have = tag_names(db.session(), [sub.id])[sub.id]
        if remove:
            gone = {n.lower() for n in names}
            wanted = [n for n in have if n.lower() not in gone]
        else:
            wanted = have + names
        edit_person(db.session(), sub.id, tags=parse_tags(wanted), by="cli")
        db.session.commit()
    except NewsletterError as exc:
        raise fail(exc) from None
    now = tag_names(db.session(), [sub.id])[sub.id]
    click.echo(f"{address}: {', '.join(now) if now else 'no tags'}")


def _mails(count: int) -> str:
    return f"{count} confirmation mail{'' if count == 1 else 's'}"
