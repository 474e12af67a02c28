"""RQ queues: JSON-serialised jobs (never pickle), named by purpose."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from flask import Flask
from rq import Queue, Retry
from rq.serializers import JSONSerializer

from newsletter.extensions import get_redis, this_app

# Confirmation and welcome mails first, so a big send never delays a reader's confirmation.
MAIL_QUEUE = "mail"
SEND_QUEUE = "send"
DEFAULT_QUEUE = "default"
# Webhook posts last: a slow receiver holds a worker for at most one post's deadline, and a
# worker always takes mail first.
WEBHOOK_QUEUE = "webhooks"
ALL_QUEUES = (MAIL_QUEUE, SEND_QUEUE, DEFAULT_QUEUE, WEBHOOK_QUEUE)
# What a worker process's main worker takes; webhooks have a thread of their own beside it
# (tasks/webhook_thread.py), so no webhook post ever waits in front of a mail.
MAIL_WORK_QUEUES = (MAIL_QUEUE, SEND_QUEUE, DEFAULT_QUEUE)
# Set while a worker runs a batch: a dispatcher leaves that batch alone.
ALIVE_KEY = "newsletter:send-alive:{issue}:{batch}"
# How long RQ keeps a job's result, and a failed job for someone to look at.
RESULT_TTL = 3600
FAILURE_TTL = 7 * 24 * 3600
# RQ runs these itself (WATCH, Lua, promotion) and refuses or ignores a caller's pipeline.
_PIPELINE_UNSAFE = frozenset({"depends_on", "rate_limit", "unique", "pipeline"})


def get_queue(name: str = DEFAULT_QUEUE, app: Flask | None = None) -> Queue:
    """Return the named queue on the app's Redis (one Queue object per app, client and name)."""
    app = this_app(app)
    client = get_redis(app)
    cache: dict[str, Queue] = app.extensions.setdefault("rq_queues", {})
    queue = cache.get(name)
    if queue is None or queue.connection is not client:
        queue = cache[name] = Queue(name, connection=client, serializer=JSONSerializer)
    return queue


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
    q = get_queue(queue, app)
    settings: dict[str, Any] = {
        "job_id": job_id,
        "retry": retry,
        "failure_ttl": FAILURE_TTL,
        "result_ttl": RESULT_TTL,
        **options,
    }
    if _PIPELINE_UNSAFE.intersection(options):
        return q.enqueue(func, *args, **settings)
    # One pipeline, so the job costs one round trip to Redis instead of two.
    pipe = q.connection.pipeline()
    job = q.enqueue(func, *args, pipeline=pipe, **settings)
    pipe.execute()
    return job
