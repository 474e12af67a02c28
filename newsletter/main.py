"""Entry points: the `newsletter` console script, `python worker.py`, and gunicorn's app."""

from __future__ import annotations

import sys

import click
from dotenv import load_dotenv
from flask import Flask
from flask.cli import FlaskGroup

from newsletter.app import create_app
from newsletter.cli.errors import EX_TEMPFAIL
from newsletter.config import ConfigError


def make_app() -> Flask:
    """Build the app from the environment (and .env); a bad setting exits with one line."""
    load_dotenv()
    try:
        return create_app()
    except ConfigError as exc:
        click.echo(f"newsletter: bad setting: {exc}", err=True)
        sys.exit(EX_TEMPFAIL if _piped_from_an_mta(sys.argv[1:]) else 2)


def _piped_from_an_mta(args: list[str]) -> bool:
    """Tell whether this is ``bounces receive``: an MTA bounces the bounce on any exit but 75.

    A bad setting is the operator's to fix; the mail waits in the MTA's queue until then.
    """
    return any(a == "bounces" and b == "receive" for a, b in zip(args, args[1:], strict=False))


def main() -> None:
    """Entry point of the `newsletter` console script."""
    cli = FlaskGroup(
        create_app=make_app,
        add_default_commands=True,
        load_dotenv=True,
        help="Tip of the Week: run the service and manage the list.",
    )
    cli.main(prog_name="newsletter")


if __name__ == "__main__":
    main()
