"""The app as the subscribe bench serves it: the product app plus a hello-world route.

    gunicorn --pythonpath bench wsgi_bench:app

No product change: the extra routes live only here. ``POST /bench/floor`` is a sign-up without
its database work (CSRF, the form's checks, the per-client limit's Redis round trip, the
confirmation's enqueue, the browser's memory of the address; nothing stored), to tell the
database's share of a sign-up from the rest. ``POST /bench/subscribe-bare`` is the sign-up
itself (the same view, every check, the same answer) with its database work replaced by the
least a durable sign-up stores: one committed row of an id and the address under a unique key
(``bench_signup``, created here), in one round trip on PostgreSQL as the product's own. The
sign-up limit comes from
BENCH_SUBSCRIBE_RATE_LIMIT (default: high enough that the load generator never meets it).
"""

from __future__ import annotations

import os
from typing import Any

import sqlalchemy as sa
from flask import Flask, g, redirect, request
from werkzeug.wrappers import Response

from newsletter.app import create_app
from newsletter.extensions import db, get_redis, settings
from newsletter.models import utcnow
from newsletter.subscribers import limits
from newsletter.subscribers.signup import SubscribeResult
from newsletter.subscribers.signup import subscribe as product_subscribe
from newsletter.subscribers.validate import clean_name, normalize_email
from newsletter.tasks.mail import queue_confirmation
from newsletter.web import public
from newsletter.web import signup as web_signup
from newsletter.web.signup import LIMIT_NAME, remember_address

_BENCH_SIGNUP = sa.Table(
    "bench_signup",
    sa.MetaData(),
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("email", sa.String(254), nullable=False, unique=True),
)
_STORE = sa.insert(_BENCH_SIGNUP).returning(_BENCH_SIGNUP.c.id)


def make_app() -> Flask:
    """Build the app with the bench's sign-up limit and a /bench/hello route."""
    limit = os.environ.get("BENCH_SUBSCRIBE_RATE_LIMIT", "1000000000/3600")
    app = create_app({"SUBSCRIBE_RATE_LIMIT": limit})

    @app.get("/bench/hello")
    def bench_hello() -> str:
        """Answer with a fixed string: the floor of what this app and server cost."""
        return "Hello, world!"

    @app.post("/bench/floor")
    def bench_floor() -> Response:
        """Do what a sign-up does besides the database, and answer as it does."""
        email = normalize_email(request.form.get("email", ""), check_dns=False)
        clean_name(request.form.get("name", ""))
        found = settings()
        limits.hit(get_redis(), LIMIT_NAME, request.remote_addr or "-", found.subscribe_rate_limit)
        queue_confirmation(0, utcnow())  # a job per sign-up, as the real one enqueues
        remember_address(email)
        return redirect("/check-inbox", 303)

    @app.post("/bench/subscribe-bare")
    def bench_subscribe_bare() -> Any:
        """Sign up as POST /subscribe does, storing only an id and the address."""
        g.bench_bare = True
        return public.subscribe_view()

    with app.app_context():
        _BENCH_SIGNUP.create(db.engine, checkfirst=True)
    # Replaced under the name the view calls it by; the bare route alone takes the other path.
    web_signup.subscribe = _subscribe  # type: ignore[attr-defined]
    return app


def _subscribe(session, email: str, *args: object, **kwargs: object) -> SubscribeResult:  # type: ignore[no-untyped-def]
    """The product's sign-up, or under /bench/subscribe-bare the least durable row."""
    if not g.get("bench_bare"):
        return product_subscribe(session, email, *args, **kwargs)  # type: ignore[arg-type]
    now = utcnow()
    engine = db.engine
    if engine.dialect.name == "postgresql":  # autocommit: one round trip, as the product's
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            new_id = conn.execute(_STORE, {"email": email}).scalar_one()
    else:  # in the request's transaction, which the view commits
        new_id = session.connection().execute(_STORE, {"email": email}).scalar_one()
    return SubscribeResult(new_id, True, now, now, awaiting=True)


app = make_app()
