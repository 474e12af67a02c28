"""`newsletter editors add|list|passwd|remove`: editor accounts for the web workplace."""

from __future__ import annotations

import sys

import click
import sqlalchemy as sa
from flask import Flask
from flask.cli import with_appcontext
from sqlalchemy.exc import IntegrityError

from newsletter.auth.passwords import PasswordTooShort, hash_password, set_password
from newsletter.cli.errors import fail
from newsletter.errors import Invalid
from newsletter.extensions import db
from newsletter.models import Editor
from newsletter.subscribers.validate import normalize_email


def register(app: Flask) -> None:
    """Attach the `editors` command group to the app's CLI."""
    app.cli.add_command(editors)


@click.group("editors")
def editors() -> None:
    """Create and manage editor accounts."""


def _address(raw: str) -> str:
    try:
        return normalize_email(raw)
    except Invalid as exc:
        raise fail(exc) from None


def _read_password(from_stdin: bool) -> str:
    if from_stdin:
        # One line; the newline a pipe or heredoc adds is not part of the password.
        return sys.stdin.readline().rstrip("\r\n")
    return str(click.prompt("Password", hide_input=True, confirmation_prompt="Repeat the password"))


def _find(address: str) -> Editor:
    editor = db.session.scalar(sa.select(Editor).where(Editor.email == address))
    if editor is None:
        raise click.ClickException(f"no editor with the address {address}")
    return editor


@editors.command("add")
@click.argument("email")
@click.option("--password-stdin", is_flag=True, help="Read the password from standard input.")
@with_appcontext
def add(email: str, password_stdin: bool) -> None:
    """Create an editor account; the password is asked for (or read with --password-stdin)."""
    address = _address(email)
    if db.session.scalar(sa.select(Editor.id).where(Editor.email == address)) is not None:
        raise click.ClickException(f"an editor with the address {address} already exists")
    try:
        password_hash = hash_password(_read_password(password_stdin))
    except PasswordTooShort as exc:
        raise click.ClickException(str(exc)) from None
    db.session.add(Editor(email=address, password_hash=password_hash))
    try:
        db.session.commit()
    except IntegrityError:  # created by someone else in the meantime
        db.session.rollback()
        raise click.ClickException(f"an editor with the address {address} already exists") from None
    click.echo(f"editor {address} added; log in at /editor/login")


@editors.command("passwd")
@click.argument("email")
@click.option("--password-stdin", is_flag=True, help="Read the password from standard input.")
@with_appcontext
def passwd(email: str, password_stdin: bool) -> None:
    """Set a new password for an editor (their open sessions end, in every browser)."""
    editor = _find(_address(email))
    try:
        set_password(editor, _read_password(password_stdin))
    except PasswordTooShort as exc:
        raise click.ClickException(str(exc)) from None
    db.session.commit()
    click.echo(f"password of {editor.email} changed")


@editors.command("list")
@with_appcontext
def list_editors() -> None:
    """Print one editor a line: email, created, last login."""
    for editor in db.session.scalars(sa.select(Editor).order_by(Editor.email)):
        last = editor.last_login_at.strftime("%Y-%m-%d %H:%M") if editor.last_login_at else "never"
        click.echo(f"{editor.email}\tcreated {editor.created_at:%Y-%m-%d}\tlast login {last}")


@editors.command("remove")
@click.argument("email")
@with_appcontext
def remove(email: str) -> None:
    """Delete an editor account (and its API tokens)."""
    editor = _find(_address(email))
    db.session.delete(editor)
    db.session.commit()
    click.echo(f"editor {editor.email} removed")
