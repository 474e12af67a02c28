"""`newsletter doctor`: check the settings, the relay and the DNS records mail depends on."""

from __future__ import annotations

import json

import click
from flask import Flask
from flask.cli import with_appcontext

from newsletter.config import ConfigError, parse_nameserver
from newsletter.doctor import Lookup, Status, run_checks
from newsletter.services import branded_settings

DNS_TIMEOUT = 3.0


@click.command("doctor")
@click.option("--json", "as_json", is_flag=True, help="Print the checks as a JSON list.")
@click.option(
    "--nameserver",
    metavar="HOST[:PORT]",
    help="Ask this DNS server (default: DNS_NAMESERVER, else this machine's resolvers).",
)
@with_appcontext
def doctor_command(as_json: bool, nameserver: str | None) -> None:
    """Check settings, SMTP relay, SPF, DKIM, DMARC and bounce MX; nothing is sent."""
    try:
        server = parse_nameserver(nameserver or "", "--nameserver")
    except ConfigError as exc:
        raise click.UsageError(str(exc)) from None
    found = branded_settings()
    checks = run_checks(found, Lookup.for_config(found, server, timeout=DNS_TIMEOUT))
    if as_json:
        click.echo(json.dumps([c.as_dict() for c in checks], indent=2, ensure_ascii=False))
    else:
        for check in checks:
            click.echo(f"{check.status} {check.name}: {check.summary}")
            for line in check.detail:
                click.echo(f"    {line}")
    if any(c.status == Status.FAIL for c in checks):
        click.get_current_context().exit(1)


def register(app: Flask) -> None:
    """Add the doctor command to the CLI."""
    app.cli.add_command(doctor_command)
