"""Webhook posts on threads of their own in each worker process, so they never delay mail.

A worker process's main RQ worker takes the mail, send and default queues; beside it, a
thread runs an RQ worker on the webhooks queue alone, and another moves that queue's due
retries out of RQ's schedule (the main worker's scheduler looks after its own queues only).
However many receivers are slow, and each post may take its whole deadline
(webhooks/post.py), a confirmation mail never waits behind a webhook.

Both threads stop when the process is asked to, and ride out a Redis outage: whatever stops
their loop is logged, and after a pause (0.5 s doubling to 10 s) they start again afresh.
"""

from __future__ import annotations

import atexit
import logging
import threading
import time
from collections.abc import Callable
from typing import Any

import redis
from flask import Flask
from rq.scheduler import RQScheduler
from rq.serializers import JSONSerializer
from rq.timeouts import TimerDeathPenalty

from newsletter.extensions import db, get_redis
from newsletter.tasks.polling import PollingWorker
from newsletter.tasks.process import request_stop, stop_requested, wait_for_stop, worker_name
from newsletter.tasks.queues import WEBHOOK_QUEUE
from newsletter.webhooks.post import DEADLINE

log = logging.getLogger(__name__)

FIRST_PAUSE = 0.5
LONGEST_PAUSE = 10.0
# Past this a thread counts as having run well, and its next pause starts short again.
HEALTHY_RUN = 30.0


class WebhookWorker(PollingWorker):
    """An RQ worker for the webhooks queue, run in a thread beside the process's main worker."""

    # RQ's default job timeout uses SIGALRM, which only the main thread can receive.
    death_penalty_class = TimerDeathPenalty
    # RQ's own reconnect waits in time.sleep, deaf to a stop request: keep each wait short.
    max_connection_wait_time = LONGEST_PAUSE
    app: Flask
    jobs_done = 0

    def _install_signal_handlers(self) -> None:
        pass  # the main worker owns the signals, and only the main thread may install handlers

    def subscribe(self) -> None:
        # RQ's pubsub commands (stop, kill the horse) act by signals, the main worker's business.
        pass

    def procline(self, message: str) -> None:
        pass  # the process title is the main worker's

    def perform_job(self, job: Any, queue: Any, *args: Any) -> bool:
        self.jobs_done += 1
        with self.app.app_context():
            try:
                return bool(super().perform_job(job, queue, *args))
            finally:
                db.session.remove()


def build_webhook_worker(app: Flask) -> WebhookWorker:
    """Return a worker for the webhooks queue, named after this process."""
    worker = WebhookWorker(
        [WEBHOOK_QUEUE],
        connection=get_redis(app),
        serializer=JSONSerializer,
        name=f"{worker_name()}-webhooks",
    )
    worker.app = app
    return worker


def _work(app: Flask) -> None:
    worker = build_webhook_worker(app)
    # The name is this process's: a registration under it can only be left by this process's
    # earlier worker, which lost Redis before recording its end (or by a killed process that
    # had this pid), and RQ refuses to start a worker whose name looks alive.
    worker.register_death()
    worker.work(logging_level="INFO")


def _schedule(app: Flask) -> None:
    scheduler = RQScheduler(
        [WEBHOOK_QUEUE],
        connection=get_redis(app),
        serializer=JSONSerializer,
        name=f"{worker_name()}-webhooks",
    )
    scheduler.register_birth()
    try:
        while not wait_for_stop(scheduler.interval):
            # One process holds the queue's lock; the others try each second (one Lua call),
            # so a dead holder's retries wait at most for its lock to expire, about a minute.
            if not scheduler.acquired_locks:
                scheduler.acquire_locks()
            if scheduler.acquired_locks:
                scheduler.heartbeat()
                scheduler.enqueue_scheduled_jobs()
    finally:
        scheduler.release_locks()
        scheduler.register_death()


class _Runner(threading.Thread):
    """Run ``loop`` until the process stops, starting it again after whatever ended it."""

    def __init__(self, name: str, loop: Callable[[Flask], None], app: Flask) -> None:
        super().__init__(name=name, daemon=True)
        self.loop = loop
        self.app = app

    def run(self) -> None:
        pause = FIRST_PAUSE
        while not stop_requested():
            began = time.monotonic()
            try:
                self.loop(self.app)
            except (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError) as exc:
                log.warning("%s: Redis unavailable (%s); starting again", self.name, exc)
            except Exception:
                log.exception("%s stopped; starting again", self.name)
            if stop_requested():
                break
            if time.monotonic() - began > HEALTHY_RUN:
                pause = FIRST_PAUSE
            if wait_for_stop(pause):
                break
            pause = min(pause * 2, LONGEST_PAUSE)


def start_webhook_runner(app: Flask, *, with_scheduler: bool = True) -> threading.Thread:
    """Start this process's webhook worker thread (and its retry scheduler); return the worker."""
    threads: list[threading.Thread] = [_Runner("webhook-worker", _work, app)]
    if with_scheduler:
        threads.append(_Runner("webhook-scheduler", _schedule, app))
    for thread in threads:
        thread.start()
    atexit.register(_finish, threads)
    return threads[0]


def _finish(threads: list[threading.Thread]) -> None:
    # At exit, let the post in hand finish and record its answer (its deadline bounds the
    # wait): cut off, it would be posted again a minute later, by the reconciler.
    request_stop()
    for thread in threads:
        thread.join(DEADLINE + 2)
