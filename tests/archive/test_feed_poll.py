"""FEED_URL: the first poll archives the blog, each later post becomes one issue, polled cheaply."""

from __future__ import annotations

import threading
from datetime import timedelta

import pytest
import sqlalchemy as sa

from newsletter.archive.poll import claim_poll, feed_state, poll_feed
from newsletter.archive.sources import fetching_for
from newsletter.archive.tables import FeedState, IssueSource
from newsletter.extensions import db, settings
from newsletter.issues import actions as issues
from newsletter.models import Issue, IssueStatus, utcnow
from newsletter.tasks.feed import schedule_feed_poll
from newsletter.tasks.tick import scheduler_tick
from newsletter.tasks.worker import build_worker
from tests.archive.exports import Post, rss, weekly
from tests.helpers import truncate_all
from tests.helpers.editors import editor_client

FEED = "/blog/feed.xml"


@pytest.fixture
def blog_app(make_app, feed_server):
    def build(**extra):
        return make_app(FEED_URL=feed_server.url(FEED), **extra)

    return build


def due() -> None:
    """Say the next poll's time has come (instead of waiting FEED_POLL_INTERVAL)."""
    db.session.execute(sa.update(FeedState).values(next_poll_at=utcnow() - timedelta(seconds=1)))
    db.session.commit()


def poll(run_jobs) -> None:
    due()
    assert schedule_feed_poll() is not None
    assert run_jobs() >= 1


def by_status() -> dict[str, list[str]]:
    db.session.expire_all()
    found: dict[str, list[str]] = {}
    for issue in db.session.scalars(sa.select(Issue).order_by(Issue.id)):
        found.setdefault(issue.status.value, []).append(issue.subject)
    db.session.rollback()
    return found


def state() -> FeedState:
    db.session.expire_all()
    return db.session.scalars(sa.select(FeedState)).one()


def test_the_first_poll_archives_the_blog_then_each_new_post_is_one_draft(
    blog_app, feed_server, make_subscriber, inbox
):
    app = blog_app()
    with app.app_context():
        truncate_all()
        make_subscriber("reader@example.com")
        run_jobs = _runner(app)
        posts = weekly(5, start=utcnow() - timedelta(weeks=10))
        feed_server.serve(FEED, rss(posts[:3]), etag='"v1"')
        # The worker's tick claims the first poll at once; the job archives what is there.
        scheduler_tick()
        run_jobs()
        assert by_status() == {"archived": [p.title for p in posts[:3]]}
        assert state().started_at is not None and state().archived == 3
        # Two posts appear on the blog: each becomes one draft, linked to its post.
        posts[3].published = posts[4].published = utcnow()
        feed_server.serve(FEED, rss(posts), etag='"v2"')
        poll(run_jobs)
        assert by_status()["draft"] == [posts[3].title, posts[4].title]
        draft = db.session.scalars(sa.select(Issue).where(Issue.subject == posts[4].title)).one()
        assert "tool --5" in draft.body_md
        assert db.session.get(IssueSource, draft.id).url.startswith(posts[4].link)
        # Nothing new: the server answers 304 to the conditional GET, and nothing changes.
        poll(run_jobs)
        path, headers, status = feed_server.hits(FEED)[-1]
        assert headers.get("If-None-Match") == '"v2"' and status == 304
        assert state().last_status == "304" and state().items_seen == 5
        assert len(by_status()["draft"]) == 2
        # The editor sees the feed's state and where each new issue came from, and edits it.
        client = editor_client(app)
        page = client.get("/editor/archive").get_data(as_text=True)
        assert 'id="feed-items">5<' in page and 'id="feed-issues">2<' in page
        assert 'id="feed-archived">3 (at the first poll)<' in page
        assert "(304)" in page and posts[4].title in page
        shown = client.get(f"/editor/issues/{draft.id}").get_data(as_text=True)
        assert "From your blog's feed" in shown and posts[4].link in shown
        issues.update_issue(draft.id, "Edited: " + draft.subject, draft.body_md + "\nP.S.\n")
        assert db.session.get(Issue, draft.id).status is IssueStatus.DRAFT
        assert inbox.messages == []  # a draft waits for its editor


def _runner(app):
    def run() -> int:
        db.session.commit()
        worker = build_worker(app)
        worker.work(burst=True, with_scheduler=False)
        db.session.expire_all()
        return worker.jobs_done

    return run


@pytest.fixture
def blog(blog_app):
    app = blog_app()
    with app.app_context():
        truncate_all()
        yield app
        db.session.rollback()


def test_last_modified_alone_makes_the_get_conditional_too(blog, feed_server):
    run_jobs = _runner(blog)
    stamp = "Tue, 01 Dec 2026 10:00:00 GMT"
    feed_server.serve(FEED, rss(weekly(2)), last_modified=stamp)
    poll(run_jobs)
    poll(run_jobs)
    _path, headers, status = feed_server.hits(FEED)[-1]
    assert headers.get("If-Modified-Since") == stamp and status == 304
    assert by_status() == {"archived": [p.title for p in weekly(2)]}


def test_a_feed_failing_for_a_while_is_shown_and_then_picked_up_again(blog, feed_server):
    run_jobs = _runner(blog)
    posts = weekly(4, start=utcnow() - timedelta(weeks=10))
    feed_server.serve(FEED, rss(posts[:2]))
    poll(run_jobs)
    feed_server.serve(FEED, b"down for maintenance", status=503)
    poll(run_jobs)
    poll(run_jobs)
    assert state().failures == 2 and state().last_error == "HTTP 503 Service Unavailable"
    feed_server.serve(FEED, b"<html>a maintenance page</html>")
    poll(run_jobs)
    assert state().failures == 3 and "is not an RSS or Atom feed" in state().last_error
    client = editor_client(blog)
    page = client.get("/editor/archive").get_data(as_text=True)
    assert "3 failed polls in a row" in page and "is not an RSS or Atom feed" in page
    posts[2].published = posts[3].published = utcnow()
    feed_server.serve(FEED, rss(posts))
    poll(run_jobs)
    poll(run_jobs)
    assert state().failures == 0 and state().last_status == "200"
    assert by_status() == {
        "archived": [p.title for p in posts[:2]],
        "draft": [p.title for p in posts[2:]],
    }


def test_feed_mode_ready_queues_new_posts_for_the_weekly_slot(blog_app, feed_server):
    app = blog_app(FEED_MODE="ready", WEEKLY_SLOT="every monday at 09:00 in Europe/Berlin")
    with app.app_context():
        truncate_all()
        run_jobs = _runner(app)
        feed_server.serve(FEED, rss(weekly(1)))
        poll(run_jobs)
        fresh = Post(2, published=utcnow())
        feed_server.serve(FEED, rss([*weekly(1), fresh]))
        poll(run_jobs)
        assert by_status() == {"archived": [weekly(1)[0].title], "ready": [fresh.title]}


def test_an_old_post_that_shows_up_late_joins_the_archive_not_the_inbox(blog, feed_server):
    run_jobs = _runner(blog)
    recent = Post(2, published=utcnow() - timedelta(days=1))
    feed_server.serve(FEED, rss([recent]))
    poll(run_jobs)
    old = Post(1, published=utcnow() - timedelta(days=400))
    feed_server.serve(FEED, rss([old, recent]))
    poll(run_jobs)
    assert by_status() == {"archived": [recent.title, old.title]}


def test_a_poll_is_claimed_once_per_interval_whoever_ticks(blog):
    feed = settings().feed
    now = utcnow()
    first = claim_poll(db.session(), feed, now)
    assert first is not None
    assert claim_poll(db.session(), feed, now) is None
    assert claim_poll(db.session(), feed, now + timedelta(seconds=899)) is None
    assert claim_poll(db.session(), feed, now + timedelta(seconds=901)) is not None


def test_no_feed_url_means_no_poll(make_app):
    app = make_app()
    with app.app_context():
        assert schedule_feed_poll() is None


def test_two_pollers_at_the_same_moment_make_one_issue_per_item(blog, feed_server):
    feed = settings().feed
    posts = weekly(12, start=utcnow() - timedelta(weeks=20))
    feed_server.serve(FEED, rss(posts[:2]))
    poll_feed(db.session(), feed, fetching_for(settings()))
    for post in posts[2:]:
        post.published = utcnow()
    feed_server.serve(FEED, rss(posts))
    db.session.commit()
    start = threading.Barrier(3)
    done: list[str] = []

    def poller() -> None:
        with blog.app_context():
            start.wait()
            done.append(poll_feed(db.session(), feed, fetching_for(settings())).status)
            db.session.remove()

    threads = [threading.Thread(target=poller) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert len(done) == 3
    found = by_status()
    assert sorted(found["draft"]) == sorted(p.title for p in posts[2:])
    assert len(found["archived"]) == 2
    assert feed_state(db.session(), feed).issues_made >= 10


def test_a_feed_that_redirects_to_an_internal_address_is_an_error_not_a_fetch(blog, feed_server):
    run_jobs = _runner(blog)
    port = feed_server.server.server_address[1]
    feed_server.serve(FEED, status=302, headers={"Location": f"http://localhost:{port}/x.xml"})
    feed_server.serve("/x.xml", rss(weekly(2)))
    poll(run_jobs)
    assert "localhost is an internal address" in state().last_error
    assert "FEED_ALLOW_HOSTS" in state().last_error
    assert feed_server.hits("/x.xml") == [] and by_status() == {}
    feed_server.serve(FEED, status=301, headers={"Location": "http://169.254.169.254/feed"})
    poll(run_jobs)
    assert "169.254.169.254" in state().last_error and state().failures == 2
