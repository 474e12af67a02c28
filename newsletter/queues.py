"""RQ queues: JSON-serialised jobs (never pickle), named by purpose."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from flask import Flask, current_app
from rq import Queue, Retry
from rq.serializers import JSONSerializer

from . import get_redis

# Confirmation and welcome mails first, so a big send never delays a reader's confirmation.
MAIL_QUEUE = "mail"
SEND_QUEUE = "send"
DEFAULT_QUEUE = "default"
ALL_QUEUES = (MAIL_QUEUE, SEND_QUEUE, DEFAULT_QUEUE)


def get_queue(name: str = DEFAULT_QUEUE, app: Flask | None = None) -> Queue:
    """Return the named queue on the app's Redis."""
    app = app or current_app._get_current_object()  # type: ignore[attr-defined]
    return Queue(name, connection=get_redis(app), serializer=JSONSerializer)


def enqueue(
    func: Callable[..., Any],
    *args: Any,
    queue: str = DEFAULT_QUEUE,
    job_id: str | None = None,
    retry: Retry | None = None,
    app: Flask | None = None,
    **options: Any,
) -> Any:
    """Put ``func(*args)`` on a queue; args must be JSON values (ids, not objects)."""
    return get_queue(queue, app).enqueue(
        func,
        *args,
        job_id=job_id,
        retry=retry,
        failure_ttl=7 * 24 * 3600,
        result_ttl=3600,
        **options,
    )
