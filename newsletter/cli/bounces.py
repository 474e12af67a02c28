"""`newsletter bounces receive|serve|list`: bounces and complaints arriving as mail.

``receive`` is for an MTA's pipe (Postfix ``pipe``, procmail): it exits 0 whatever the mail
says, since anything else makes the MTA bounce the bounce, and 75 (EX_TEMPFAIL) only when
the mail could not be recorded, so that the MTA keeps it and tries again.
"""

from __future__ import annotations

import logging
import signal
import sys
import threading
from datetime import datetime
from email.utils import parseaddr
from typing import BinaryIO

import click
import sqlalchemy as sa
from flask import Flask
from flask.cli import with_appcontext

from newsletter.bounces.inbound import MAX_SIZE, apply_mail
from newsletter.bounces.listener import start_listener
from newsletter.cli.errors import EX_TEMPFAIL
from newsletter.config import Settings
from newsletter.extensions import db, this_app
from newsletter.extensions import settings as app_settings
from newsletter.models import Bounce, BounceKind, Subscriber

log = logging.getLogger(__name__)

# What `list` calls each kind: "refused" is the reader's domain refusing us, not the reader.
SHOWN_AS = {
    BounceKind.HARD: "hard",
    BounceKind.SOFT: "soft",
    BounceKind.COMPLAINT: "complaint",
    BounceKind.BLOCKED: "refused",
}
_CONTROL = {c: " " for c in [*range(0x20), 0x7F, *range(0x80, 0xA0)]}


def register(app: Flask) -> None:
    """Attach the bounces command group."""
    app.cli.add_command(bounces)


@click.group("bounces")
def bounces() -> None:
    """Take in bounces and complaints; list them."""


def bounce_address(settings: Settings) -> str:
    """Return the address bounces come back to: BOUNCE_ADDRESS, else MAIL_FROM's."""
    return settings.bounce_address or parseaddr(settings.mail_from)[1]


def _take(app: Flask, raw: bytes, envelope_to: list[str]) -> list[str]:
    with app.app_context():
        try:
            return apply_mail(db.session(), raw, envelope_to, app_settings(app))
        finally:
            db.session.remove()


def _read_capped(stream: BinaryIO, cap: int) -> tuple[bytes, int]:
    """Read up to ``cap + 1`` bytes; drain the rest so the MTA's write never fails."""
    data = stream.read(cap + 1)
    total = len(data)
    if total > cap:
        while chunk := stream.read(1 << 20):
            total += len(chunk)
    return data, total


@bounces.command("receive")
@click.option(
    "--recipient",
    default="",
    help="The envelope recipient, as the MTA passes it (Postfix: ${original_recipient}).",
)
@with_appcontext
def bounces_receive(recipient: str) -> None:
    """Read one mail on stdin and record the bounces or complaint it reports."""
    raw, total = _read_capped(sys.stdin.buffer, MAX_SIZE)
    if total > MAX_SIZE:
        log.warning("mail of %d bytes on stdin refused (over %d)", total, MAX_SIZE)
        click.echo(f"refused: the message is {total} bytes, over {MAX_SIZE}; nothing recorded")
        return
    try:
        lines = apply_mail(db.session(), raw, recipient.strip(), app_settings())
    except sa.exc.SQLAlchemyError as exc:
        reason = str(exc.orig if isinstance(exc, sa.exc.DBAPIError) else exc).splitlines()
        click.echo(
            f"error: the database did not answer ({(reason or ['?'])[0][:200]}); "
            "nothing recorded, the MTA should try again",
            err=True,
        )
        sys.exit(EX_TEMPFAIL)
    for line in lines:
        click.echo(line)


@bounces.command("serve")
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=2525, show_default=True, type=click.IntRange(1, 65535))
@click.option(
    "--max-size",
    default=MAX_SIZE,
    show_default=True,
    type=click.IntRange(1024, MAX_SIZE),
    help="Largest message accepted, in bytes (bigger ones get 552 5.3.4).",
)
@with_appcontext
def bounces_serve(host: str, port: int, max_size: int) -> None:
    """Listen for bounces over SMTP until SIGTERM or Ctrl-C."""
    app = this_app()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    address = bounce_address(app_settings(app))
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    try:
        controller = start_listener(
            lambda raw, rcpts: _take(app, raw, rcpts), address, host, port, max_size
        )
    except (OSError, RuntimeError) as exc:
        raise click.ClickException(f"cannot listen on {host}:{port}: {exc}") from None
    local, _, domain = address.rpartition("@")
    click.echo(f"listening on {host}:{port} for {address} and {local}+TAG@{domain}", err=True)
    try:
        stop.wait()
    finally:
        controller.stop()
    click.echo("stopped", err=True)


@bounces.command("list")
@click.option("--kind", type=click.Choice(list(SHOWN_AS.values())))
@click.option("--limit", default=50, show_default=True, type=click.IntRange(1, 100_000))
@with_appcontext
def bounces_list(kind: str | None, limit: int) -> None:
    """Print recent bounces, newest first: TIME, EMAIL, KIND, DETAIL (tab-separated)."""
    query = (
        sa.select(Bounce, Subscriber.email)
        .outerjoin(Subscriber, Subscriber.id == Bounce.subscriber_id)
        .order_by(Bounce.at.desc(), Bounce.id.desc())
        .limit(limit)
    )
    if kind:
        query = query.where(Bounce.kind == next(k for k, v in SHOWN_AS.items() if v == kind))
    for bounce, email in db.session.execute(query):
        click.echo(
            f"{_when(bounce.at)}\t{email or '-'}\t{SHOWN_AS[bounce.kind]}\t{_detail(bounce)}"
        )


def _when(at: datetime) -> str:
    return at.strftime("%Y-%m-%dT%H:%M:%SZ")


def _detail(bounce: Bounce) -> str:
    # The diagnostic is a stranger's text: no tab, line break or escape sequence reaches the
    # operator's terminal from it.
    text = (bounce.diagnostic or bounce.status_code or "-").translate(_CONTROL).strip()
    where = f"issue {bounce.issue_id}" if bounce.issue_id else "no issue"
    detail = f"{where}, via {bounce.source}: {text}"
    if bounce.undone_at is not None:
        detail += f" (undone by {bounce.undone_by} at {_when(bounce.undone_at)})"
    return detail
