"""The app factory: settings, extensions, blueprints, error pages, CLI commands."""

from __future__ import annotations

import logging
import os
import time
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from flask import Flask, Response, jsonify, render_template, request
from werkzeug.exceptions import HTTPException, ServiceUnavailable
from werkzeug.middleware.proxy_fix import ProxyFix

import newsletter.models  # noqa: F401 - defines every table on db.metadata before create_all/migrate
from newsletter.api import routes as api
from newsletter.cli import register as register_commands
from newsletter.config import load_settings
from newsletter.errors import NewsletterError
from newsletter.extensions import csrf, db, migrate
from newsletter.logsafe import install as keep_tokens_out_of_logs
from newsletter.tasks.webhooks import install as install_webhooks
from newsletter.web import archive, dev, public
from newsletter.web.editor import imports, stats, subscribers, tokens, webhooks
from newsletter.web.editor import issues as editor

PACKAGE_DIR = Path(__file__).resolve().parent


def _resource_dir(name: str) -> str:
    """Find templates/ or migrations/: beside the package in a checkout, else inside it."""
    checkout = PACKAGE_DIR.parent / name
    return str(checkout if checkout.is_dir() else PACKAGE_DIR / name)


def create_app(config: dict[str, Any] | None = None) -> Flask:
    """Build the app from the environment (and ``config`` overrides); raise ConfigError if bad."""
    overrides = dict(config or {})
    instance_path = overrides.pop("INSTANCE_PATH", None) or os.environ.get("INSTANCE_PATH")
    app = Flask(
        __name__,
        template_folder=_resource_dir("templates"),
        static_folder=None,
        instance_path=str(Path(instance_path).resolve()) if instance_path else None,
        instance_relative_config=True,
    )
    # Plain values override the environment and are validated like it; anything the settings
    # do not cover (e.g. WTF_CSRF_ENABLED) goes into the config as given.
    env = {
        **os.environ,
        **{k: str(v) for k, v in overrides.items() if isinstance(v, str | int | float)},
    }
    settings = load_settings(env, Path(app.instance_path))
    app.config.update(settings)
    app.config.update({k: v for k, v in overrides.items() if k not in settings})
    app.config["MIGRATIONS_DIR"] = _resource_dir("migrations")
    if app.config.get("TRUSTED_PROXIES"):
        # Believe only as many X-Forwarded-For/-Proto hops as there are proxies of our own, so
        # per-IP limits see the client; the host stays BASE_URL's business.
        n = app.config["TRUSTED_PROXIES"]
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=n, x_proto=n, x_host=0)  # type: ignore[method-assign]

    keep_tokens_out_of_logs()  # before anything logs a confirm or unsubscribe path
    _init_database(app)
    # Redis connects lazily (extensions.get_redis): a request that never needs it starts none.
    _init_security(app)
    _register_blueprints(app)
    _register_errors(app)

    install_webhooks(app)
    register_commands(app)
    return app


def _init_database(app: Flask) -> None:
    uri = app.config["SQLALCHEMY_DATABASE_URI"]
    if uri.startswith("sqlite"):
        Path(app.instance_path).mkdir(parents=True, exist_ok=True)
        # The stdlib driver's own transaction handling is off; we say BEGIN IMMEDIATE ourselves,
        # so a read that later writes never hits "database is locked" (the busy timeout waits).
        app.config.setdefault(
            "SQLALCHEMY_ENGINE_OPTIONS",
            {"connect_args": {"timeout": 30, "check_same_thread": False, "isolation_level": None}},
        )
    db.init_app(app)
    migrate.init_app(app, db, directory=app.config["MIGRATIONS_DIR"], render_as_batch=True)
    with app.app_context():
        if uri.startswith("sqlite"):
            _tune_sqlite(db.engine)
        else:
            _ping_when_idle(db.engine)


def _tune_sqlite(engine: sa.Engine) -> None:
    @sa.event.listens_for(engine, "connect")
    def on_connect(dbapi_conn: Any, _record: Any) -> None:
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute("PRAGMA busy_timeout=30000")
        cur.execute("PRAGMA foreign_keys=ON")
        cur.execute("PRAGMA synchronous=NORMAL")
        cur.close()

    @sa.event.listens_for(engine, "begin")
    def on_begin(conn: sa.Connection) -> None:
        conn.exec_driver_sql("BEGIN IMMEDIATE")


UNAVAILABLE = ServiceUnavailable(
    "The database is briefly unavailable. Nothing was changed; please try again in a moment."
)

# A pooled connection unused for longer than this is pinged before it is handed out.
PING_AFTER_IDLE = 1.0


def _ping_when_idle(engine: sa.Engine, idle: float = PING_AFTER_IDLE) -> None:
    """Like ``pool_pre_ping``, but only for connections that sat idle for ``idle`` seconds.

    pool_pre_ping costs a round trip on every checkout, a quarter of a sign-up's. A
    connection back in use within a second has just worked; one idle longer (the server may
    have restarted meanwhile) is pinged and, if dead, replaced before anyone uses it. The
    rare request that still meets a dead connection gets a 503 page, or a retry (sign-ups).
    """

    @sa.event.listens_for(engine, "connect")
    def fresh(dbapi_conn: Any, record: Any) -> None:
        record.info["idle_since"] = time.monotonic()

    @sa.event.listens_for(engine, "checkin")
    def back(dbapi_conn: Any, record: Any) -> None:
        if record is not None:
            record.info["idle_since"] = time.monotonic()

    @sa.event.listens_for(engine, "checkout")
    def out(dbapi_conn: Any, record: Any, proxy: Any) -> None:
        if time.monotonic() - record.info.get("idle_since", 0.0) <= idle:
            return
        try:
            engine.dialect.do_ping(dbapi_conn)
        except Exception as exc:  # the pool replaces the connection and tries again
            raise sa.exc.DisconnectionError(f"stale connection: {exc}") from exc


def _init_security(app: Flask) -> None:
    csrf.init_app(app)

    @app.after_request
    def security_headers(response: Response) -> Response:
        response.headers.setdefault("X-Content-Type-Options", "nosniff")
        response.headers.setdefault("X-Frame-Options", "DENY")
        response.headers.setdefault("Referrer-Policy", "same-origin")
        return response


def _register_blueprints(app: Flask) -> None:
    pages = (public, archive, editor, subscribers, imports, stats, tokens, webhooks, api, dev)
    for module in pages:
        module.register(app)


def _register_errors(app: Flask) -> None:
    def wants_json() -> bool:
        return request.path.startswith("/api/")

    @app.errorhandler(HTTPException)
    def http_error(exc: HTTPException) -> Any:
        if wants_json():
            body = {
                "error": {"code": exc.name.lower().replace(" ", "_"), "message": exc.description}
            }
            return jsonify(body), exc.code
        return render_template("error.html", error=exc), exc.code

    @app.errorhandler(NewsletterError)
    def domain_error(exc: NewsletterError) -> Any:
        db.session.rollback()
        if wants_json():
            body: dict[str, Any] = {"code": exc.code, "message": exc.message}
            if exc.field:
                body["field"] = exc.field
            return jsonify({"error": body}), exc.status
        page = HTTPException(exc.message)
        page.code, page.description = exc.status, exc.message
        return render_template("error.html", error=page), exc.status

    @app.errorhandler(sa.exc.DBAPIError)
    def database_error(exc: sa.exc.DBAPIError) -> Any:
        if not exc.connection_invalidated:
            return unexpected(exc)
        # The database went away under this request (a restart); the pool has dropped the
        # dead connections, so the next request reconnects. Nothing was changed.
        logging.getLogger("newsletter").warning("database connection lost on %s", request.path)
        db.session.rollback()
        headers = {"Retry-After": "5"}
        if wants_json():
            body = {"error": {"code": "unavailable", "message": "Please try again in a moment."}}
            return jsonify(body), 503, headers
        return render_template("error.html", error=UNAVAILABLE), 503, headers

    @app.errorhandler(Exception)
    def unexpected(exc: Exception) -> Any:
        logging.getLogger("newsletter").exception("unhandled error on %s", request.path)
        if wants_json():
            return jsonify(
                {"error": {"code": "internal_error", "message": "Something went wrong."}}
            ), 500
        return render_template("error.html", error=None), 500
