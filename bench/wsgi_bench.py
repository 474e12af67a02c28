"""The app as the subscribe bench serves it: the product app plus a hello-world route.

    gunicorn --pythonpath bench wsgi_bench:app

No product change: the extra route lives only here. The sign-up limit comes from
BENCH_SUBSCRIBE_RATE_LIMIT (default: high enough that the load generator never meets it).
"""

from __future__ import annotations

import os

from flask import Flask

from newsletter.app import create_app


def make_app() -> Flask:
    """Build the app with the bench's sign-up limit and a /bench/hello route."""
    limit = os.environ.get("BENCH_SUBSCRIBE_RATE_LIMIT", "1000000000/3600")
    app = create_app({"SUBSCRIBE_RATE_LIMIT": limit})

    @app.get("/bench/hello")
    def bench_hello() -> str:
        """Answer with a fixed string: the floor of what this app and server cost."""
        return "Hello, world!"

    return app


app = make_app()
