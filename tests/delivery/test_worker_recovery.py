"""Workers with production timings through the faults an operator meets: every worker killed
with kill -9, and Redis restarting (losing everything) in the middle of a send.

Each test asserts what the readers receive: everyone exactly once, at most the message that
was in flight on a killed connection twice, and the send finishes by itself.
"""

from __future__ import annotations

import collections
import signal
import time
from typing import Any

import pytest
import sqlalchemy as sa

from newsletter.extensions import db
from newsletter.issues.actions import create_issue
from newsletter.models import Delivery, DeliveryStatus, Subscriber
from newsletter.tasks.dispatch import send_issue
from tests.helpers import override_settings
from tests.helpers.editors import editor_client, page_token
from tests.helpers.redis_server import RedisServer

pytestmark = pytest.mark.slow


def _start_send(world: Any, n: int) -> None:
    issue = create_issue("Recovery", "Body of the tip.")
    world.issue_id = issue.id
    assert f"queued for {n}" in send_issue(issue.id)


def _held(world: Any) -> set[str]:
    """Return the addresses of the copies claimed by a worker and not yet settled."""
    db.session.remove()
    held = set(
        db.session.scalars(
            sa.select(Subscriber.email)
            .join(Delivery, Delivery.subscriber_id == Subscriber.id)
            .where(Delivery.issue_id == world.issue_id, Delivery.status == DeliveryStatus.SENDING)
        )
    )
    db.session.remove()
    return held


def _everyone_once(world: Any, emails: list[str], allowed_duplicates: int) -> None:
    copies = collections.Counter(a.rcpt for a in world.sink.accepted)
    assert set(copies) == set(emails), f"missing {len(set(emails) - set(copies))}"
    assert sum(n - 1 for n in copies.values()) <= allowed_duplicates
    found = world.status()
    assert found["status"] == "sent"
    assert found["sent"] == len(emails)


# The defaults a production worker runs with (SEND_LEASE_SECONDS 30, RECONCILE_INTERVAL 30).
@pytest.mark.world(SEND_LEASE_SECONDS=None, RECONCILE_INTERVAL=None, BATCH_SIZE=500)
def test_after_kill_9_of_every_worker_new_workers_finish_within_seconds(world):
    emails = world.subscribers(2000)
    world.sink.data_delay = 0.002  # a send long enough to be caught in the middle
    a, b = world.worker(), world.worker()
    _start_send(world, 2000)
    world.wait_until(lambda: len(world.sink.accepted) >= 400)
    for proc in (a, b):
        proc.send_signal(signal.SIGKILL)
    for proc in (a, b):
        proc.wait()
    held = _held(world)
    assert held, "the kill should leave claimed copies behind"
    left = len(emails) - len(set(r.rcpt for r in world.sink.accepted))
    started = time.monotonic()
    world.worker(), world.worker()
    # SPEC: the copies the dead workers had claimed go out within a minute (they used to wait
    # out a 300 s lease). That is the guarantee asserted; bench/ measures speed.
    world.wait_until(lambda: held <= {r.rcpt for r in world.sink.accepted}, timeout=90)
    took = time.monotonic() - started
    world.wait_until(world.finished, timeout=120)
    print(f"\nkill -9 of both workers: {len(held)} claimed copies, {left} unsent; "
          f"the claimed ones went out {took:.1f} s after new workers started, "
          f"the whole send {time.monotonic() - started:.1f} s")  # fmt: skip
    assert took < 60, f"the claimed copies went out after {took:.1f} s"
    # Each killed worker had one connection: at most its message in flight is doubled.
    _everyone_once(world, emails, allowed_duplicates=2)


@pytest.fixture
def own_redis(tmp_path):
    server = RedisServer(tmp_path / "redis").start()
    yield server
    server.kill()


def _redis_restart_mid_send(world: Any, own_redis: RedisServer, n: int) -> None:
    emails = world.subscribers(n)
    a, b = world.worker(), world.worker()
    _start_send(world, n)
    world.wait_until(lambda: len(world.sink.accepted) >= n // 4)
    own_redis.restart(down_for=2.0)
    world.wait_until(world.finished, timeout=90)
    assert a.poll() is None and b.poll() is None, "a worker died with Redis"
    _everyone_once(world, emails, allowed_duplicates=0)


@pytest.mark.world(SEND_RATE=60, SEND_LEASE_SECONDS=None, RECONCILE_INTERVAL=None)
def test_redis_restart_mid_send_at_send_rate_workers_ride_it_out(world, own_redis):
    _point_at(world, own_redis)
    _redis_restart_mid_send(world, own_redis, 300)


@pytest.mark.world(SEND_LEASE_SECONDS=None, RECONCILE_INTERVAL=None)
def test_redis_restart_mid_send_unthrottled_workers_ride_it_out(world, own_redis):
    _point_at(world, own_redis)
    world.sink.data_delay = 0.005
    _redis_restart_mid_send(world, own_redis, 1000)


def _point_at(world: Any, server: RedisServer) -> None:
    world.env["REDIS_URL"] = server.url
    override_settings(world.app, redis_url=server.url)
    world.app.extensions.pop("redis", None)
    world.app.extensions.pop("rq_queues", None)


@pytest.mark.world(SEND_LEASE_SECONDS=None, RECONCILE_INTERVAL=None)
def test_an_issue_sent_while_redis_is_down_goes_out_once_it_is_back(world, own_redis):
    _point_at(world, own_redis)
    emails = world.subscribers(120)
    issue = create_issue("Sent during an outage", "Body of the tip.")
    world.issue_id = issue.id
    client = editor_client(world.app)
    page = f"/editor/issues/{issue.id}"
    token = page_token(client, page)
    own_redis.kill()
    answer = client.post(f"{page}/send", data={"csrf_token": token}, follow_redirects=True)
    assert answer.status_code == 200
    text = answer.get_data(as_text=True)
    assert "Sending to 120 subscribers now" in text
    assert "Redis does not answer right now" in text
    own_redis.start()
    world.worker()
    world.wait_until(world.finished, timeout=60)
    _everyone_once(world, emails, allowed_duplicates=0)
