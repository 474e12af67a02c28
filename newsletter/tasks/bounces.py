"""Poll ``BOUNCE_MAILBOX`` from a thread of each worker, one worker at a time.

Every ``BOUNCE_POLL_INTERVAL`` seconds the worker that wins a Redis lock fetches what the
mailbox holds and takes each message in (``bounces.inbound``); the lock is renewed while the
poll runs, so a long one is never joined by a second worker. A mailbox or database that does
not answer is logged and tried again at the next interval: it never stops the worker.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

from flask import Flask

from newsletter.bounces.inbound import apply_mail
from newsletter.bounces.mailbox import Polled, poll
from newsletter.extensions import db, get_redis, settings
from newsletter.tasks.process import stop_requested, wait_for_stop, worker_name

log = logging.getLogger(__name__)

MAILBOX_LOCK = "newsletter:bounce-mailbox-lock"
SHORTEST_INTERVAL = 1.0


def poll_mailbox(app: Flask, go_on: Callable[[], bool] = lambda: not stop_requested()) -> Polled:
    """Take in every message waiting in the app's BOUNCE_MAILBOX once; return what was done."""
    mailbox = settings(app).mailbox
    if mailbox is None:
        return Polled()

    def take(raw: bytes, envelope_to: str) -> list[str]:
        with app.app_context():
            try:
                return apply_mail(db.session(), raw, envelope_to, settings(app))
            finally:
                db.session.remove()

    done = poll(mailbox, take, go_on=go_on)
    if done.handled or done.left:
        log.info("bounce mailbox %s: %d handled, %d left", mailbox, done.handled, done.left)
    return done


class MailboxPoller(threading.Thread):
    """Poll the bounce mailbox now and then every interval, when this worker holds the lock."""

    def __init__(self, app: Flask) -> None:
        super().__init__(name="newsletter-bounce-mailbox", daemon=True)
        self.app = app
        self.interval = max(settings(app).bounce_poll_interval, SHORTEST_INTERVAL)
        self.hold_ms = int(self.interval * 900)

    def run(self) -> None:
        while not stop_requested():
            try:
                self.poll_if_ours()
            except Exception as exc:  # a mailbox, database or Redis blip: try again later
                log.warning("bounce mailbox poll failed: %s", exc)
            if wait_for_stop(self.interval):
                return

    def poll_if_ours(self) -> Polled | None:
        """Poll once if no other worker is polling now; return what was done."""
        redis = get_redis(self.app)
        if not redis.set(MAILBOX_LOCK, worker_name(), nx=True, px=self.hold_ms):
            return None

        def go_on() -> bool:
            if stop_requested() or redis.get(MAILBOX_LOCK) != worker_name().encode():
                return False
            redis.pexpire(MAILBOX_LOCK, self.hold_ms)
            return True

        return poll_mailbox(self.app, go_on)


def start_mailbox_poller(app: Flask) -> MailboxPoller | None:
    """Start the poller thread when BOUNCE_MAILBOX is set; return it (None when unset)."""
    if settings(app).mailbox is None:
        return None
    poller = MailboxPoller(app)
    poller.start()
    return poller
