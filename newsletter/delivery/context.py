"""What a batch is given and what it reports: its settings, its context, its report."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from sqlalchemy.orm import Session

from newsletter.delivery.claims import CLAIM_CHUNK
from newsletter.delivery.message import IssueMessage
from newsletter.delivery.outcomes import BounceReport, FailureStreak

RECHECK_SECONDS = 0.05


class Sender(Protocol):
    def send(
        self,
        to: str,
        data: bytes,
        sender: str | None = None,
        before_end: Callable[[], object] | None = None,
    ) -> None: ...


@dataclass
class SendSettings:
    lease_seconds: float = 300.0
    max_attempts: int = 6
    retry_base: float = 60.0
    pause_after: int = 50
    # Wait inside the job for a retry due this soon; a later one is left to the reconciler.
    short_wait: float = 2.0
    claim_chunk: int = CLAIM_CHUNK
    # How stale the claimed rows' subscriber status and the issue's status may get before they
    # are read again: whoever unsubscribes more than this before their turn is skipped, and a
    # pause or cancel stops the chunk in hand, however big the chunk.
    recheck_seconds: float = RECHECK_SECONDS
    # A relay that cannot be reached: the first wait before trying again, and the longest.
    relay_wait: float = 2.0
    relay_wait_max: float = 120.0
    # "Not now" answers to this many readers in a row say the relay is in trouble, not they:
    # from then on the send waits for the relay instead of counting those readers' tries.
    relay_suspect_after: int = 5
    # On PostgreSQL, whether each acceptance's record waits for its WAL flush to disk. Off, a
    # record is committed (visible, and kept through any worker crash or killed backend) but
    # its flush is grouped with the next ones: only a crash of the database server itself can
    # lose the last fraction of a second of records, whose copies would then go out again.
    record_flush_wait: bool = False


@dataclass
class BatchReport:
    sent: int = 0
    failed: int = 0
    retried: int = 0
    released: int = 0
    skipped: int = 0
    stopped: bool = False
    paused: bool = False
    halted: bool = False  # the issue was paused or cancelled while the batch ran
    finished: bool = False
    lost_leases: int = 0
    waiting: bool = False  # ended to wait for the relay; the reconciler hands it out again


# Records what a refusal says about the reader (``bounces.record`` applies it).
Bounce = Callable[[Session, BounceReport], object]


def _never() -> bool:
    return False


def _nothing() -> None:
    pass


@dataclass(frozen=True)
class BatchContext:
    """What a batch works with, from the worker that runs it: one per batch.

    ``worker`` names the process on each claim (the reconciler frees a dead one's claims);
    ``message`` builds the issue's message (once per batch, on its first claimed chunk);
    ``token_for`` and ``manage_token_for`` sign a reader's unsubscribe and manage links;
    ``bounce`` records what a refusal says about a reader; ``streak`` counts failures in a
    row (per process unless shared); ``should_stop`` says the worker is asked to stop;
    ``throttle`` waits for the send rate's next token (None: no rate); ``heartbeat`` is
    called with each lease renewal, from the renewing thread; ``envelope`` gives a copy's
    envelope sender from its delivery id (VERP), None for MAIL_FROM's.
    """

    worker: str
    message: Callable[[], IssueMessage]
    token_for: Callable[[int], str]
    manage_token_for: Callable[[int, datetime, str], str]
    smtp: Sender
    settings: SendSettings
    bounce: Bounce
    streak: FailureStreak | None = None
    should_stop: Callable[[], bool] = _never
    throttle: Callable[[], None] | None = None
    heartbeat: Callable[[], None] = _nothing
    envelope: Callable[[int], str] | None = None
