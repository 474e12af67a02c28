"""`newsletter tokens create|list|revoke`: API bearer tokens from the command line."""

from __future__ import annotations

import click
import sqlalchemy as sa
from flask import Flask
from flask.cli import with_appcontext

from newsletter.auth.api_tokens import create_token, list_tokens, revoke_token
from newsletter.extensions import db
from newsletter.models import Editor


@click.group("tokens")
def tokens() -> None:
    """Create, list and revoke API tokens."""


@tokens.command("create")
@click.option("--editor", "editor_email", required=True, help="The editor who owns the token.")
@click.option("--name", default="", help="What the token is for.")
@with_appcontext
def create(editor_email: str, name: str) -> None:
    """Create a token and print it (the only time it is shown) on the last line."""
    editor = db.session.scalar(
        sa.select(Editor).where(Editor.email == editor_email.strip().lower())
    )
    if editor is None:
        raise click.ClickException(f"no editor {editor_email}; add one with `editors add`")
    made = create_token(db.session(), editor.id, name)
    db.session.commit()
    click.echo(f"token {made.token.id} created; it is shown only now:", err=True)
    click.echo(made.secret)


@tokens.command("list")
@with_appcontext
def list_command() -> None:
    """Print id, prefix, name, last use and state of each token."""
    for t in list_tokens(db.session()):
        used = t.last_used_at.isoformat() if t.last_used_at else "never"
        state = "revoked" if t.revoked_at else "active"
        click.echo(f"{t.id}\t{t.prefix}…\t{t.name}\t{used}\t{state}")


@tokens.command("revoke")
@click.argument("token_id", type=int)
@with_appcontext
def revoke(token_id: int) -> None:
    """Revoke a token at once."""
    if not revoke_token(db.session(), token_id):
        raise click.ClickException(f"no active token {token_id}")
    db.session.commit()
    click.echo(f"token {token_id} revoked")


def register(app: Flask) -> None:
    """Add the tokens group to the CLI."""
    app.cli.add_command(tokens)
