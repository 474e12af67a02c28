"""The app factory: settings, extensions, blueprints, error pages, CLI commands."""

from __future__ import annotations

import dataclasses
import functools
import logging
import os
import secrets
import time
from pathlib import Path
from typing import Any

import redis
import sqlalchemy as sa
from flask import Flask, Response, abort, g, has_request_context, jsonify, render_template, request
from flask_babel import gettext
from werkzeug.exceptions import BadRequest, HTTPException, ServiceUnavailable
from werkzeug.middleware.proxy_fix import ProxyFix
from werkzeug.routing import IntegerConverter

import newsletter.archive.tables  # noqa: F401 - the back catalogue's tables, on db.metadata too
import newsletter.delivery.sequence_choice  # noqa: F401 - the editor's sequence, on db.metadata
import newsletter.issues.corrections  # noqa: F401 - the log of corrections, on db.metadata too
import newsletter.models  # noqa: F401 - defines every table on db.metadata before create_all/migrate
from newsletter.api import routes as api
from newsletter.api.serialise import MAX_ID
from newsletter.cli import register as register_commands
from newsletter.config import ENV_NAMES, Settings, flask_config, load_settings
from newsletter.errors import NewsletterError
from newsletter.extensions import babel, csrf, db, migrate, settings
from newsletter.i18n import DEFAULT_LANGUAGE, N_, TRANSLATIONS_DIR, format_date
from newsletter.logsafe import install as keep_tokens_out_of_logs
from newsletter.models import MAX_EMAIL_LENGTH
from newsletter.services import brand
from newsletter.sqlite_setup import is_busy
from newsletter.sqlite_setup import tune as tune_sqlite
from newsletter.tasks.webhook_posts import install as install_webhooks
from newsletter.web import (
    archive,
    branding,
    dev,
    embed,
    join,
    manage,
    provider_notices,
    public,
)
from newsletter.web.editor import back_catalogue as catalogue_page
from newsletter.web.editor import (
    bounces,
    doctor,
    imports,
    stats,
    subscribers,
    times,
    tokens,
    webhooks,
    writing,
)
from newsletter.web.editor import embed as embed_page
from newsletter.web.editor import issues as editor
from newsletter.web.editor import sequence as sequence_page
from newsletter.web.editor import settings as settings_page

PACKAGE_DIR = Path(__file__).resolve().parent


def numbers_up_to(limit: int) -> str:
    """Return a regex matching exactly the decimal numbers 1..``limit`` (no leading zero)."""
    digits = str(limit)
    parts = [f"[1-9][0-9]{{0,{len(digits) - 2}}}"] if len(digits) > 1 else []
    for i, digit in enumerate(digits):
        lowest = 1 if i == 0 else 0
        if int(digit) > lowest:  # as long as limit, equal up to i, smaller at i
            parts.append(f"{digits[:i]}[{lowest}-{int(digit) - 1}][0-9]{{{len(digits) - i - 1}}}")
    return f"(?:{'|'.join([*parts, digits])})"


class RowId(IntegerConverter):
    """``<id:name>``: a row id the id columns can hold; any other number is simply no such page."""

    # The bound is in the pattern, not only in to_python: a number that fails to_python on a
    # route with another method would answer 405, not 404. ASCII digits only (\d takes any).
    regex = numbers_up_to(MAX_ID)

    def __init__(self, url_map: Any) -> None:
        super().__init__(url_map, min=1, max=MAX_ID)


class ReadableBody:
    """``wsgi.input`` whose read errors (broken chunked framing, a cut-off body) are a 400."""

    def __init__(self, raw: Any) -> None:
        self._raw = raw

    def _call(self, name: str, *args: Any) -> Any:
        try:
            return getattr(self._raw, name)(*args)
        except HTTPException:
            raise
        except Exception as exc:  # whatever the server's parser raises, the client sent it
            raise BadRequest(N_("The request body could not be read.")) from exc

    def read(self, *args: Any) -> bytes:
        """Read like the server's stream, a broken body raising BadRequest."""
        return bytes(self._call("read", *args))

    def readline(self, *args: Any) -> bytes:
        """Read one line like the server's stream, a broken body raising BadRequest."""
        return bytes(self._call("readline", *args))

    def readlines(self, *args: Any) -> list[bytes]:
        """Read lines like the server's stream, a broken body raising BadRequest."""
        return list(self._call("readlines", *args))

    def __iter__(self) -> Any:
        return iter(self.readline, b"")


def _guard_body(wsgi_app: Any) -> Any:
    def app(environ: dict[str, Any], start_response: Any) -> Any:
        if "wsgi.input" in environ:
            environ["wsgi.input"] = ReadableBody(environ["wsgi.input"])
        return wsgi_app(environ, start_response)

    return app


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
    loaded = load_settings(env, Path(app.instance_path))
    app.extensions["settings"] = loaded
    app.config.update(flask_config(loaded))
    known = ENV_NAMES | flask_config(loaded).keys()
    app.config.update({k: v for k, v in overrides.items() if k not in known})
    app.config["MIGRATIONS_DIR"] = _resource_dir("migrations")
    app.url_map.converters["id"] = RowId
    app.wsgi_app = _guard_body(app.wsgi_app)  # type: ignore[method-assign]
    if loaded.trusted_proxies:
        # Believe only as many X-Forwarded-For/-Proto hops as there are proxies of our own, so
        # per-IP limits see the client; the host stays BASE_URL's business.
        n = loaded.trusted_proxies
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=n, x_proto=n, x_host=0)  # type: ignore[method-assign]

    keep_tokens_out_of_logs()  # before anything logs a confirm or unsubscribe path
    _init_database(app, loaded)
    # Redis connects lazily (extensions.get_redis): a request that never needs it starts none.
    _init_security(app, loaded)
    _init_languages(app, loaded)
    _register_blueprints(app)
    _register_errors(app)

    install_webhooks(app)
    register_commands(app)
    return app


def _init_database(app: Flask, loaded: Settings) -> None:
    uri = loaded.database_url
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
            tune_sqlite(db.engine)
        else:
            _ping_when_idle(db.engine)


# English here, translated when the page is rendered (error pages look descriptions up).
UNAVAILABLE = ServiceUnavailable(
    N_("The database is briefly unavailable. Nothing was changed; please try again in a moment.")
)
QUEUE_UNAVAILABLE = ServiceUnavailable(
    N_(
        "The service is briefly unavailable (a server it needs is restarting). "
        "Please try again in a moment."
    )
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


# Every editor page, not only the issue pages: the people, import, stats, token and webhook
# pages show addresses, API tokens and signing secrets. Only our own nonce-tagged scripts run
# (the preview shows sanitised mail in a sandboxed frame; this is the second fence), forms post
# only here, and no copy is kept by a browser or proxy.
EDITOR_POLICY = (
    "default-src 'self'; img-src * data:; style-src 'self' 'unsafe-inline'; "
    "script-src 'nonce-{nonce}'; frame-src 'self' about:; connect-src 'self'; "
    "form-action 'self'; frame-ancestors 'none'; base-uri 'none'; object-src 'none'"
)
# What public pages use: inline styles (base.html), images in archived issues from anywhere,
# forms posting here, the dev mail catcher's sandboxed srcdoc frame. No script at all.
PUBLIC_POLICY = (
    "default-src 'none'; img-src * data:; style-src 'unsafe-inline'; frame-src about:; "
    "form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
)
# A year, this host only: subdomains may be the operator's other sites, not ours to pin.
HSTS = "max-age=31536000"


def csp_nonce() -> str:
    """Return this response's script nonce (one per request)."""
    if "csp_nonce" not in g:
        g.csp_nonce = secrets.token_urlsafe(16)
    return str(g.csp_nonce)


def _is_editor_page(path: str) -> bool:
    return path == "/editor" or path.startswith("/editor/")


def _has_nul(values: Any) -> bool:
    return any("\0" in k or "\0" in v for k, v in values.items(multi=True))


def _init_security(app: Flask, loaded: Settings) -> None:
    @app.before_request
    def refuse_nul() -> None:
        # No column stores a NUL and PostgreSQL refuses a query holding one: a URL with one is
        # refused before any view can put it in a query, and so is an editor's form. The public
        # sign-up form says what was wrong itself, beside the form.
        if "\0" in request.path or _has_nul(request.args):
            abort(400, description=N_("The address holds a NUL character, which no page takes."))
        editor_form = _is_editor_page(request.path) and request.method == "POST"
        if editor_form and _has_nul(request.form):
            abort(400, description=N_("The form holds a NUL character; please type it again."))

    csrf.init_app(app)
    https = loaded.base_url.startswith("https://")

    @app.context_processor
    def nonce_helper() -> dict[str, Any]:
        return {"csp_nonce": csp_nonce}

    @app.context_processor
    def typed_settings() -> dict[str, Any]:
        # Pages read the settings as the code does: `settings.newsletter_name`; the name and
        # address set at /editor/settings win over the environment's here, for every page.
        look = brand(app)
        found = settings(app)
        if (look.name, look.postal_address) != (found.newsletter_name, found.postal_address):
            found = dataclasses.replace(
                found, newsletter_name=look.name, postal_address=look.postal_address
            )
        return {"settings": found, "brand": look}

    @app.after_request
    def security_headers(response: Response) -> Response:
        headers = response.headers
        headers.setdefault("X-Content-Type-Options", "nosniff")
        headers.setdefault("X-Frame-Options", "DENY")
        headers.setdefault("Referrer-Policy", "same-origin")
        if _is_editor_page(request.path):
            headers.setdefault("Content-Security-Policy", EDITOR_POLICY.format(nonce=csp_nonce()))
            headers["Cache-Control"] = "no-store"
        else:
            headers.setdefault("Content-Security-Policy", PUBLIC_POLICY)
        if https:
            headers.setdefault("Strict-Transport-Security", HSTS)
        return response


# The heading of each error page, and what it says when the code that refused gave no reason
# of its own (Werkzeug's default descriptions are English only).
ERROR_TITLES = {  # Werkzeug's names for them, which English pages have always shown
    400: N_("Bad Request"),
    403: N_("Forbidden"),
    404: N_("Not Found"),
    405: N_("Method Not Allowed"),
    409: N_("Conflict"),
    410: N_("Gone"),
    413: N_("Request Entity Too Large"),
    415: N_("Unsupported Media Type"),
    422: N_("Unprocessable Entity"),
    429: N_("Too Many Requests"),
    500: N_("Internal Server Error"),
    502: N_("Bad Gateway"),
    503: N_("Service Unavailable"),
}
ERROR_DEFAULTS = {
    400: N_("The request could not be understood. Nothing was changed."),
    403: N_("You are not allowed to open this page."),
    404: N_("There is nothing at this address. Please check the link for typos."),
    405: N_("This address cannot be used like that. Please start again from the front page."),
    409: N_("That cannot be done in the current state. Nothing was changed."),
    410: N_("This page is no longer here."),
    413: N_("What was sent is larger than this page accepts. Nothing was changed."),
    415: N_("What was sent is not in a format this page accepts. Nothing was changed."),
    422: N_("Something in the form is not right. Please check it and try again."),
    429: N_("That was a lot of requests in a short time. Please wait a moment and try again."),
    500: N_("We could not finish that. Nothing was changed; please try again in a moment."),
    502: N_("A server we depend on did not do its part. Please try again later."),
    503: N_("The service is briefly unavailable. Please try again in a moment."),
}


def error_page(error: HTTPException | None) -> tuple[str, str]:
    """Return the heading and the explanation of an error page, in the page's language."""
    if error is None:
        return gettext("Something went wrong"), gettext(ERROR_DEFAULTS[500])
    code = error.code or 500
    title = gettext(ERROR_TITLES[code]) if code in ERROR_TITLES else error.name
    description = str(error.description or "")
    if not description or description == type(error).description:
        # Werkzeug's own words; ours say the same in the reader's language.
        description = ERROR_DEFAULTS.get(code, description)
    return str(title), str(gettext(description)) if description else ""


def error_text(error: NewsletterError | str | None) -> str:
    """Return an error's message in the page's language, its variable parts filled in.

    Templates call ``{{ error_text(error) }}`` with an ``Invalid`` (or any NewsletterError):
    its English template is looked up in the catalogue, then ``params`` fill it. A message
    the catalogue does not know is shown as written.
    """
    if error is None:
        return ""
    if isinstance(error, str):
        return str(gettext(error))
    if error.params:
        return str(gettext(error.template, **error.params))
    return str(gettext(error.template))


def _init_languages(app: Flask, loaded: Settings) -> None:
    """Pages speak NEWSLETTER_LANGUAGE (Flask-Babel), with the catalogues mail uses too."""
    language = loaded.language
    app.config["BABEL_DEFAULT_LOCALE"] = language
    app.config["BABEL_TRANSLATION_DIRECTORIES"] = str(TRANSLATIONS_DIR)
    babel.init_app(app, locale_selector=lambda: language)
    # As the catalogue was extracted (translations/babel.cfg): a {% trans %} block's msgid is
    # its text with the template's line breaks and indentation folded into single spaces.
    app.jinja_env.policies["ext.i18n.trimmed"] = True
    app.jinja_env.globals["format_date"] = functools.partial(format_date, language=language)
    app.jinja_env.globals["language"] = language
    app.jinja_env.globals["error_text"] = error_text
    app.jinja_env.globals["max_email_length"] = MAX_EMAIL_LENGTH

    app.jinja_env.globals["error_page"] = error_page

    @app.context_processor
    def page_language() -> dict[str, Any]:
        # Editor pages are written in English whatever the readers' language.
        editor = has_request_context() and _is_editor_page(request.path)
        return {"page_language": DEFAULT_LANGUAGE if editor else language}


def _register_blueprints(app: Flask) -> None:
    pages = (public, archive, editor, subscribers, imports, stats, tokens, webhooks, api, dev)
    for module in (*pages, manage, join, doctor, bounces, provider_notices, embed, embed_page):
        module.register(app)
    catalogue_page.register(app)
    sequence_page.register(app)
    for module in (branding, settings_page, writing, times):
        module.register(app)


def _register_errors(app: Flask) -> None:
    def wants_json() -> bool:
        return request.path.startswith("/api/")

    @app.errorhandler(HTTPException)
    def http_error(exc: HTTPException) -> Any:
        # The exception's own headers (Allow on a 405 …) go with the page, not its Content-Type.
        headers = [(k, v) for k, v in exc.get_headers() if k.lower() != "content-type"]
        if wants_json():
            body = {
                "error": {"code": exc.name.lower().replace(" ", "_"), "message": exc.description}
            }
            return jsonify(body), exc.code, headers
        return render_template("error.html", error=exc), exc.code, headers

    @app.errorhandler(NewsletterError)
    def domain_error(exc: NewsletterError) -> Any:
        db.session.rollback()
        if wants_json():
            body: dict[str, Any] = {"code": exc.code, "message": exc.message}
            if exc.field:
                body["field"] = exc.field
            return jsonify({"error": body}), exc.status
        page = HTTPException(exc.message)
        page.code, page.description = exc.status, error_text(exc)
        return render_template("error.html", error=page), exc.status

    @app.errorhandler(sa.exc.DBAPIError)
    def database_error(exc: sa.exc.DBAPIError) -> Any:
        if is_busy(exc.orig):
            # SQLite's write lock was held by another connection for the whole busy timeout.
            log = logging.getLogger("newsletter")
            log.warning("database locked for longer than the busy timeout on %s", request.path)
            return unavailable()
        if not exc.connection_invalidated:
            return unexpected(exc)
        # The database went away under this request (a restart); the pool has dropped the
        # dead connections, so the next request reconnects. Nothing was changed.
        logging.getLogger("newsletter").warning("database connection lost on %s", request.path)
        return unavailable()

    @app.errorhandler(redis.RedisError)
    def queue_error(exc: redis.RedisError) -> Any:
        # Redis restarting: whatever this request committed is in the database, and the
        # reconciler hands it to workers once Redis answers; the visitor may simply retry.
        logging.getLogger("newsletter").warning("Redis unavailable on %s: %s", request.path, exc)
        return unavailable(QUEUE_UNAVAILABLE)

    def unavailable(page: HTTPException = UNAVAILABLE) -> Any:
        """Answer 503 'try again in a moment': a server we need is restarting."""
        db.session.rollback()
        headers = {"Retry-After": "5"}
        if wants_json():
            body = {"error": {"code": "unavailable", "message": "Please try again in a moment."}}
            return jsonify(body), 503, headers
        return render_template("error.html", error=page), 503, headers

    @app.errorhandler(Exception)
    def unexpected(exc: Exception) -> Any:
        logging.getLogger("newsletter").exception("unhandled error on %s", request.path)
        if wants_json():
            return jsonify(
                {"error": {"code": "internal_error", "message": "Something went wrong."}}
            ), 500
        return render_template("error.html", error=None), 500
