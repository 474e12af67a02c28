"""Two real worker processes poll one changing feed: every post becomes exactly one issue."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa

from newsletter.archive.tables import FeedState
from newsletter.extensions import db
from newsletter.extensions import settings as app_settings
from newsletter.models import Issue, IssueStatus, utcnow
from tests.archive.exports import rss, weekly
from tests.helpers import truncate_all

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parents[2]
FEED = "/feed.xml"


def wait_until(check: Callable[[], bool], what: str, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.1)


def counted() -> dict[IssueStatus, list[str]]:
    db.session.remove()
    found: dict[IssueStatus, list[str]] = {}
    for status, subject in db.session.execute(sa.select(Issue.status, Issue.subject)):
        found.setdefault(status, []).append(subject)
    db.session.remove()
    return found


def test_two_workers_polling_one_feed_make_one_issue_per_post(
    make_app, _migrated, redis_url, tmp_path, feed_server
):
    settings = {
        "FEED_URL": feed_server.url(FEED),
        "FEED_POLL_INTERVAL": "1",
        "RECONCILE_INTERVAL": "0.3",
    }
    app = make_app(**settings)
    posts = weekly(9, start=utcnow() - timedelta(weeks=30))
    feed_server.serve(FEED, rss(posts[:3]), etag='"1"')
    env = {
        **os.environ,
        "NEWSLETTER_ENV": "testing",
        "INSTANCE_PATH": str(tmp_path / "worker-instance"),
        "DATABASE_URL": _migrated,
        "REDIS_URL": redis_url,
        "SECRET_KEY": app_settings(app).secret_key,
        **settings,
    }
    with app.app_context():
        truncate_all()
        workers = [
            subprocess.Popen(
                [sys.executable, str(ROOT / "worker.py")],
                env=env,
                cwd=ROOT,
                stdout=subprocess.DEVNULL,
                stderr=open(tmp_path / f"worker-{n}.log", "wb"),  # noqa: SIM115
            )
            for n in range(2)
        ]
        try:
            wait_until(lambda: len(counted().get(IssueStatus.ARCHIVED, [])) == 3, "the archive")
            # The blog publishes, three times over, while both workers keep polling.
            shown = 3
            for upto, tag in ((5, '"2"'), (6, '"3"'), (9, '"4"')):
                for post in posts[shown:upto]:
                    post.published = utcnow()
                shown = upto
                feed_server.serve(FEED, rss(posts[:upto]), etag=tag)
                wanted = sorted(p.title for p in posts[3:upto])
                wait_until(
                    lambda wanted=wanted: sorted(counted().get(IssueStatus.DRAFT, [])) == wanted,
                    f"drafts {wanted}",
                )
            # Three more polls of the same feed: still one issue per post.
            polls = len(feed_server.hits(FEED))
            wait_until(lambda: len(feed_server.hits(FEED)) >= polls + 3, "three more polls")
            found = counted()
            assert sorted(found[IssueStatus.DRAFT]) == sorted(p.title for p in posts[3:])
            assert sorted(found[IssueStatus.ARCHIVED]) == sorted(p.title for p in posts[:3])
            statuses = [status for _path, _headers, status in feed_server.hits(FEED)]
            assert 304 in statuses  # the polls in between cost a conditional GET each
            state = db.session.scalars(sa.select(FeedState)).one()
            assert state.issues_made == 6 and state.archived == 3
        finally:
            for worker in workers:
                worker.terminate()
            for worker in workers:
                try:
                    worker.wait(10)
                except subprocess.TimeoutExpired:
                    worker.kill()
                    worker.wait()
            db.session.remove()
