"""RQ queues and jobs: JSON-serialised jobs (never pickle), queues named by purpose.

Every function RQ calls is declared with ``@job`` beside its code: the queue it waits in,
how long it may run, and the rule that names each of its jobs (a job's id says what it is
for, so the request's enqueue and the reconciler's are one job). ``enqueue`` is the one way
to put work on a queue; it takes the declaration's queue, time limit and uniqueness.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, TypeVar

from flask import Flask
from rq import Queue, Retry
from rq.exceptions import DuplicateJobError
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
# A unique enqueue is one Lua call; RQ adds a round trip before it to list the queue in
# ``rq:queues`` (what ``rq info`` shows; no worker reads it). That listing is renewed at most
# this often per queue and process, so it survives Redis losing everything.
QUEUE_LISTING_SECONDS = 60.0

F = TypeVar("F", bound=Callable[..., Any])


@dataclass(frozen=True)
class JobKind:
    """How RQ runs one job function: its queue, its time limit, the rule naming its jobs."""

    queue: str
    timeout: int
    name: Callable[..., str]
    # Enqueued with RQ's ``unique``: while a job of that name is in Redis, no second one.
    unique: bool = False


_KINDS: dict[str, JobKind] = {}


def _path(func: Callable[..., Any]) -> str:
    # What RQ stores and imports again: the function's module and name (a partial has none).
    return f"{getattr(func, '__module__', '')}.{getattr(func, '__qualname__', '')}"


def job(
    *, queue: str, timeout: int, name: Callable[..., str], unique: bool = False
) -> Callable[[F], F]:
    """Declare a function RQ calls: its queue, its time limit, and how its jobs are named."""

    def declare(func: F) -> F:
        _KINDS[_path(func)] = JobKind(queue, timeout, name, unique)
        return func

    return declare


def kind_of(func: Callable[..., Any]) -> JobKind | None:
    """Return the declaration of a function RQ calls (None for one never declared)."""
    return _KINDS.get(_path(func))


def name_job(func: Callable[..., Any], *key: Any) -> str:
    """Name the job of the declared ``func`` for ``key`` (what its ``name`` rule takes)."""
    kind = kind_of(func)
    if kind is None:
        raise LookupError(f"{_path(func)} is not declared with @job")
    return kind.name(*key)


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
    queue: str | None = None,
    job_id: str | None = None,
    retry: Retry | None = None,
    delay: float = 0.0,
    app: Flask | None = None,
    **options: Any,
) -> Any:
    """Put ``func(*args)`` on a queue; args must be JSON values (ids, not objects).

    A declared job (``@job``) goes to its queue with its time limit, and one whose kind is
    unique is not enqueued twice under one ``job_id``: then the answer is None. A ``delay``
    (seconds) leaves it to the scheduler until then. A ``pipeline`` option adds the job to
    the caller's pipeline, which the caller executes.
    """
    kind = kind_of(func)
    if kind is not None:
        queue = queue or kind.queue
        options.setdefault("job_timeout", kind.timeout)
        if kind.unique and job_id is not None:
            options.setdefault("unique", True)
    q = get_queue(queue or DEFAULT_QUEUE, app)
    settings: dict[str, Any] = {
        "job_id": job_id,
        "retry": retry,
        "failure_ttl": FAILURE_TTL,
        "result_ttl": RESULT_TTL,
        **options,
    }
    try:
        if delay > 0:
            return q.enqueue_in(timedelta(seconds=delay), func, *args, **settings)
        if options.get("unique") and not _PIPELINE_UNSAFE.intersection(options) - {"unique"}:
            return _enqueue_unique(q, func, *args, **settings)
        if _PIPELINE_UNSAFE.intersection(options):
            return q.enqueue(func, *args, **settings)
        # One pipeline, so the job costs one round trip to Redis instead of two.
        pipe = q.connection.pipeline()
        queued = q.enqueue(func, *args, pipeline=pipe, **settings)
        pipe.execute()
        return queued
    except DuplicateJobError:
        return None  # the same job is there already: the other enqueue won


def _enqueue_unique(q: Queue, func: Callable[..., Any], *args: Any, **settings: Any) -> Any:
    """Enqueue with RQ's unique Lua call: one round trip, the queue's listing renewed rarely."""
    listing = q.connection.pipeline()  # RQ puts the queue's listing (SADD) here; the job not
    queued = q.enqueue(func, *args, pipeline=listing, **settings)
    now = time.monotonic()
    listed: dict[str, float] = _LISTED.setdefault(id(q.connection), {})
    if now - listed.get(q.key, -QUEUE_LISTING_SECONDS) >= QUEUE_LISTING_SECONDS:
        listing.execute()
        listed[q.key] = now
    else:
        listing.reset()
    return queued


# When this process last listed each queue, per Redis client.
_LISTED: dict[int, dict[str, float]] = {}


def enqueue_each(
    func: Callable[..., Any], each_args: Iterable[tuple[Any, ...]], app: Flask | None = None
) -> int:
    """Enqueue the declared ``func`` once per argument tuple, in one round trip; return how many.

    Each job is named by the declaration's rule from its own arguments.
    """
    kind = kind_of(func)
    if kind is None:
        raise LookupError(f"{_path(func)} is not declared with @job")
    pipe = get_queue(kind.queue, app).connection.pipeline()
    count = 0
    for args in each_args:
        enqueue(func, *args, job_id=kind.name(*args), pipeline=pipe, app=app)
        count += 1
    if count:
        pipe.execute()
    return count
