"""Run RQ workers inside the app: one app context per job, JSON jobs, a periodic tick.

A worker stops gracefully on SIGTERM: the batch in hand finishes the message it is sending,
gives the rest of its claimed deliveries back, and the worker exits.
"""

from __future__ import annotations

import logging
import os
import threading
from typing import Any

import sqlalchemy as sa
from flask import Flask
from redis.exceptions import RedisError
from rq.scheduler import RQScheduler
from rq.serializers import JSONSerializer

from newsletter.extensions import db, get_redis, settings
from newsletter.tasks.bounces import start_mailbox_poller
from newsletter.tasks.polling import PollingWorker
from newsletter.tasks.process import request_stop, stop_requested, wait_for_stop, worker_name
from newsletter.tasks.queues import ALL_QUEUES, MAIL_WORK_QUEUES
from newsletter.tasks.tick import scheduler_tick
from newsletter.tasks.webhook_thread import start_webhook_runner

log = logging.getLogger(__name__)

TICK_LOCK = "newsletter:tick-lock"


class AppWorker(PollingWorker):
    """A non-forking worker (a job costs ~3 ms, not ~15 ms) that gives each job a fresh app context.

    Jobs never share a database session, and a job that raises leaves no transaction open.
    """

    app: Flask
    jobs_done = 0  # jobs this process performed, for tests and --burst reports

    def perform_job(self, job: Any, queue: Any, *args: Any) -> bool:
        self.jobs_done += 1
        with self.app.app_context():
            try:
                return super().perform_job(job, queue, *args)
            finally:
                db.session.remove()

    def request_stop(self, signum: Any, frame: Any) -> None:
        request_stop()
        if self.scheduler is not None:
            self.scheduler.request_stop()
        super().request_stop(signum, frame)

    def _start_scheduler(
        self, burst: bool = False, logging_level: Any = None, *args: Any, **kwargs: Any
    ) -> None:
        # RQ's own version forks the scheduler. A worker killed with SIGKILL (OOM, a crash)
        # leaves that child alive, holding copies of the worker's Redis sockets, one of them
        # still blocked in BLPOP: Redis hands the next job pushed to the queue to that socket,
        # which nobody reads, and the job is lost until the reconciler re-dispatches it. (This
        # is what left tests' issues "sending": orphans of killed test workers ate their jobs.)
        # A thread dies with its worker.
        self.scheduler = scheduler = ThreadScheduler(
            self.queues,
            connection=self.connection,
            logging_level=logging_level if logging_level is not None else self.log.level,
            serializer=self.serializer,
        )
        scheduler.acquire_locks()
        if not scheduler.acquired_locks:
            return
        if burst:
            try:
                scheduler.register_birth()
                scheduler.enqueue_scheduled_jobs()
            finally:
                scheduler.release_locks()
                scheduler.register_death()
        else:
            scheduler.start()


class _SchedulerThread(threading.Thread):
    pid = None  # RQ's stop_scheduler() signals a process by pid; a thread stops on request

    def __init__(self, scheduler: RQScheduler) -> None:
        super().__init__(name="rq-scheduler", daemon=True)
        self.scheduler = scheduler

    def run(self) -> None:
        try:
            self.scheduler.work()
        except Exception:  # Redis gone: the worker's maintenance restarts it later
            log.exception("RQ scheduler thread stopped")


class ThreadScheduler(RQScheduler):
    """RQ's scheduler (jobs enqueued for later, e.g. webhook retries) in a thread of the worker."""

    def start(self) -> Any:
        """Run the scheduler loop in a daemon thread instead of a forked process."""
        self._status = self.Status.STARTED
        thread = _SchedulerThread(self)
        # RQ's __init__ sets _process to None, so mypy infers None; RQ itself stores a process.
        self._process = thread  # type: ignore[assignment]
        thread.start()
        return thread

    def _install_signal_handlers(self) -> None:
        pass  # the worker owns the signals (and only the main thread may install handlers)


def build_worker(
    app: Flask, queues: tuple[str, ...] = ALL_QUEUES, *, incarnation: int = 0
) -> AppWorker:
    """Return a worker for the app's queues.

    A worker that reconnects after a Redis outage registers under a new name: if Redis kept
    its data, the old registration is still there and RQ would refuse the same name.
    """
    name = worker_name() if incarnation == 0 else f"{worker_name()}~{incarnation}"
    worker = AppWorker(
        list(queues), connection=get_redis(app), serializer=JSONSerializer, name=name
    )
    worker.app = app
    return worker


def run_tick(app: Flask) -> None:
    """Run the scheduler tick (weekly slot, scheduled issues, reconciler) in the app's context."""
    with app.app_context():
        try:
            scheduler_tick()
        finally:
            db.session.remove()


class Ticker(threading.Thread):
    """Every RECONCILE_INTERVAL, one worker among all runs the tick (a Redis lock picks it).

    A thread in the worker, not a job in Redis: a FLUSHALL or a Redis restart cannot lose it.
    """

    def __init__(self, app: Flask) -> None:
        super().__init__(name="newsletter-tick", daemon=True)
        self.app = app
        # At least three ticks per lease: a worker that died on another machine (whose
        # process cannot be looked up from here) has its rows back within about a lease.
        self.interval = min(
            settings(app).reconcile_interval,
            max(settings(app).send_lease_seconds / 3, 0.5),
        )

    def run(self) -> None:
        redis = get_redis(self.app)
        while not wait_for_stop(self.interval):
            try:
                if redis.set(TICK_LOCK, worker_name(), nx=True, px=int(self.interval * 900)):
                    run_tick(self.app)
            except Exception:  # a database or Redis blip: log it and tick again later
                log.exception("scheduler tick failed")


class WalCheckpointer(threading.Thread):
    """Checkpoint a SQLite WAL from a thread of its own, so no commit waits on it.

    SQLite checkpoints automatically inside whichever commit pushes the WAL past 1,000 pages,
    and with ``synchronous=NORMAL`` a checkpoint is where the fsyncs happen: a worker that
    commits once per accepted message paid ~85 µs per commit on average for them, more
    than the UPDATE itself. The worker's connections turn that off and this thread
    checkpoints every ``interval`` seconds instead: PASSIVE (it never blocks a writer) while
    the WAL is small. Under a steady stream of commits a PASSIVE checkpoint never catches up
    with the newest frame, so the WAL would never start over and would grow by gigabytes in
    a long send; past ``limit`` bytes the thread runs a TRUNCATE checkpoint, which holds
    writers back for the moment it takes and leaves an empty WAL.
    """

    def __init__(self, engine: Any, interval: float = 1.0, limit: int = 32 << 20) -> None:
        super().__init__(name="sqlite-checkpoint", daemon=True)
        self.engine = engine
        self.interval = interval
        self.limit = limit
        self.wal = f"{engine.url.database}-wal"
        self.done = threading.Event()

    def checkpoint(self) -> None:
        try:
            size = os.path.getsize(self.wal)
        except OSError:
            return  # no WAL yet (or an in-memory database): nothing to do
        mode = "TRUNCATE" if size > self.limit else "PASSIVE"
        conn = self.engine.raw_connection()
        try:
            conn.cursor().execute(f"PRAGMA wal_checkpoint({mode})").fetchall()
        finally:
            conn.close()

    def run(self) -> None:
        while not self.done.wait(self.interval):
            try:
                self.checkpoint()
            except Exception:  # a locked or vanished file: try again next time
                log.exception("WAL checkpoint failed")


def checkpoint_in_background(app: Flask) -> WalCheckpointer | None:
    """On SQLite, move WAL checkpoints of this process's connections to a thread."""
    with app.app_context():
        engine = db.engine
    if engine.dialect.name != "sqlite":
        return None

    @sa.event.listens_for(engine, "connect")
    def no_autocheckpoint(dbapi_conn: Any, _record: Any) -> None:
        dbapi_conn.execute("PRAGMA wal_autocheckpoint=0")

    engine.dispose()  # connections opened before the listener get it on reconnect
    thread = WalCheckpointer(engine)
    thread.start()
    return thread


def run_worker(app: Flask, *, burst: bool = False, with_scheduler: bool = True) -> None:
    """Run one worker until stopped (or, with ``burst``, until the queues are empty)."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    checkpointer = checkpoint_in_background(app)
    try:
        _run_worker(app, burst=burst, with_scheduler=with_scheduler)
    finally:
        if checkpointer is not None:
            checkpointer.done.set()
            checkpointer.checkpoint()


def _run_worker(app: Flask, *, burst: bool, with_scheduler: bool) -> None:
    # First take back what a killed worker held and re-enqueue batches Redis lost.
    _reconcile_now(app, "start-up")
    for hook in app.extensions.get("worker_start_hooks", []):
        with app.app_context():
            try:
                hook()
            except Exception:
                log.exception("a worker start hook failed")
    if not burst:
        Ticker(app).start()
        start_webhook_runner(app, with_scheduler=with_scheduler)
        start_mailbox_poller(app)  # BOUNCE_MAILBOX, if set
    # A burst drains every queue, mail first; otherwise webhooks run on their own thread.
    queues = ALL_QUEUES if burst else MAIL_WORK_QUEUES
    incarnation = 0
    while True:
        worker = None
        try:
            # Building the worker asks Redis too: a worker started while Redis is down waits.
            worker = build_worker(app, queues, incarnation=incarnation)
            worker.work(burst=burst, with_scheduler=with_scheduler, logging_level="INFO")
        except Exception:
            # RQ's own bookkeeping (start-up, teardown) raises when Redis is away.
            log.warning("worker loop ended by an error", exc_info=True)
        if worker is not None:
            _stop_scheduler(worker)
        if burst or stop_requested():
            return
        # RQ's loop returns on its own only when Redis failed under it: wait for Redis, then
        # rebuild what it may have lost and listen again, as a fresh RQ worker.
        if not wait_for_redis(app):
            return
        incarnation += 1
        _reconcile_now(app, "reconnect")


def _reconcile_now(app: Flask, when: str) -> None:
    try:
        run_tick(app)
    except Exception:
        log.exception("%s reconciliation failed; the periodic tick will retry", when)


def _stop_scheduler(worker: AppWorker) -> None:
    scheduler = getattr(worker, "scheduler", None)
    if scheduler is not None:
        try:
            scheduler.request_stop()
        except Exception:
            log.debug("scheduler already gone", exc_info=True)


def wait_for_redis(app: Flask, first: float = 0.5, most: float = 10.0) -> bool:
    """Ping Redis with backoff until it answers; False if the process is asked to stop first."""
    client = get_redis(app)
    delay = first
    while True:
        try:
            client.ping()
        except RedisError as exc:
            log.warning("Redis does not answer (%s); trying again in %.1f s", exc, delay)
            if wait_for_stop(delay):
                return False
            delay = min(delay * 2, most)
            continue
        log.info("Redis answers again")
        return True
