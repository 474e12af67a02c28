"""The app as the subscribe bench serves it: the product app plus a hello-world route.

    gunicorn --pythonpath bench wsgi_bench:app

No product change: the extra routes live only here. ``POST /bench/floor`` is a sign-up without
its database work (CSRF, the form's checks, the per-client limit's Redis round trip, the
confirmation's enqueue, the browser's memory of the address; nothing stored), to tell the
database's share of a sign-up from the rest. The sign-up limit comes from
BENCH_SUBSCRIBE_RATE_LIMIT (default: high enough that the load generator never meets it).
"""

from __future__ import annotations

import os

from flask import Flask, redirect, request
from werkzeug.wrappers import Response

from newsletter.app import create_app
from newsletter.extensions import get_redis, settings
from newsletter.models import utcnow
from newsletter.subscribers import limits
from newsletter.subscribers.validate import clean_name, normalize_email
from newsletter.tasks.mail import queue_confirmation
from newsletter.web.signup import LIMIT_NAME, remember_address


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

    return app


app = make_app()
