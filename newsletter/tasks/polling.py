"""A worker's wait for its next job, in short polls that notice a stop request.

RQ's own wait blocks in BLPOP for minutes and counts on its signal handler raising
StopRequested to end it; a SIGTERM that lands while RQ is writing a log line has that
exception swallowed by the logging module, and the worker then waits out the whole block.
It also retries a lost Redis inside itself, in a sleep deaf to a stop request. This wait
polls each second, checks the process's stop flag (``tasks.process``) between polls, and
lets a Redis error end the worker loop, which starts a fresh worker once Redis is back.
"""

from __future__ import annotations

import time
from typing import Any

from rq import SimpleWorker
from rq.exceptions import DequeueTimeout, StopRequested
from rq.worker import WorkerStatus

from newsletter.tasks.process import stop_requested

# How long one wait for a job lasts: the longest a stop request waits while a worker idles.
POLL = 1
# A heartbeat every poll would be three Redis writes a second per process for nothing.
HEARTBEAT_EVERY = 30.0


class PollingWorker(SimpleWorker):
    """A non-forking RQ worker that waits for jobs in short, stoppable polls."""

    _beat_at = 0.0

    def dequeue_job_and_maintain_ttl(
        self, timeout: int | None, max_idle_time: int | None = None
    ) -> tuple[Any, Any] | None:
        """Wait for the next job in short polls; raise StopRequested once a stop is asked for."""
        if timeout is None:  # burst: RQ's non-blocking pop
            return super().dequeue_job_and_maintain_ttl(timeout, max_idle_time)
        self.set_state(WorkerStatus.IDLE)
        while not stop_requested():
            if time.monotonic() - self._beat_at > HEARTBEAT_EVERY:
                self.heartbeat()
                self._beat_at = time.monotonic()
            if self.should_run_maintenance_tasks:
                self.run_maintenance_tasks()
            try:
                result = self.queue_class.dequeue_any(
                    self._ordered_queues,
                    POLL,
                    connection=self.connection,
                    job_class=self.job_class,
                    serializer=self.serializer,
                    death_penalty_class=self.death_penalty_class,
                )
            except DequeueTimeout:
                continue
            if result is not None:
                job, queue = result
                job.redis_server_version = self.get_redis_server_version()
                self.log.info("Worker %s: %s: %s", self.name, queue.name, job.id)
                self.heartbeat()
                self._beat_at = time.monotonic()
                return result
        raise StopRequested()
