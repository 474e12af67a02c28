"""The lean sign-up path: what one new address leaves behind, and what it must not skip."""

from __future__ import annotations

import sqlalchemy as sa
from rq import Queue
from rq.serializers import JSONSerializer

from newsletter.extensions import db
from newsletter.models import SubscriberStatus, utcnow
from newsletter.subscribers import state as subscriptions
from newsletter.subscribers import stats
from newsletter.tasks.queues import MAIL_QUEUE, enqueue
from tests.helpers import csrf_from
from tests.helpers.editors import editor_client
from tests.helpers.readers import subscribe, subscriber, without_address


def history_of(app, subscriber_id: int) -> str:
    html = editor_client(app).get(f"/editor/subscribers/{subscriber_id}").text
    start = html.index('id="history"')
    return html[start : html.index("</table>", start)]


def test_a_new_address_is_stored_with_its_history_stats_and_one_confirmation(
    app, client, run_jobs, inbox
):
    assert subscribe(client, "Ann@Example.com", "Ann Lee").status_code == 200
    assert subscribe(client, "bo@example.com").status_code == 200
    assert subscribe(client, "ann@example.com", "Ann Again").status_code == 200  # a repeat

    ann = subscriber("ann@example.com")
    assert ann is not None
    assert (ann.status, ann.version, ann.name) == (SubscriberStatus.PENDING, 1, "Ann Lee")
    assert (ann.signup_ip, ann.source) == ("127.0.0.1", "form")
    assert ann.confirm_sent_count == 1 and ann.confirm_sent_day == utcnow().date()
    assert ann.created_at <= utcnow() and ann.confirm_sent_at == ann.created_at

    history = history_of(app, ann.id)
    assert history.count("Confirmation mail sent") == 1  # the repeat inside 10 minutes sent none
    assert "Signed up" in history and "127.0.0.1" in history
    assert stats.kind_totals(db.session).get("subscribed") == 2
    db.session.commit()

    assert run_jobs() == 2
    assert len(inbox.wait_for(2)) == 2
    assert len(inbox.to("ann@example.com")) == 1 and len(inbox.to("bo@example.com")) == 1


def test_coming_back_through_the_form_tells_the_listeners_nothing_yet(app, client, make_subscriber):
    seen: list[tuple[str, SubscriberStatus]] = []

    def listener(session, sub, status, detail):
        seen.append((sub.email, status))

    make_subscriber("gone@example.com", status="unsubscribed")
    subscriptions.LISTENERS.append(listener)
    try:
        subscribe(client, "new@example.com")
        subscribe(client, "gone@example.com")
    finally:
        subscriptions.LISTENERS.remove(listener)
    # A first sign-up is no status change, and nor is asking to come back: that waits for
    # the link in the mail.
    assert seen == []
    back = subscriber("gone@example.com")
    assert back is not None and back.status is SubscriberStatus.UNSUBSCRIBED
    assert back.confirm_due_at is not None


def test_the_answer_page_is_the_same_every_time_and_still_shows_a_flash(app, client):
    first = without_address(subscribe(client, "one@example.com").text, "one@example.com")
    assert "Check your inbox" in first and "tips@example.org" in first and "ADDRESS" in first
    assert without_address(subscribe(client, "one@example.com").text, "one@example.com") == first
    bot = subscribe(client, "two@example.com", website="http://spam.test").text
    assert without_address(bot, "two@example.com") == first
    token = csrf_from(client.get("/").text)
    with client.session_transaction() as session:
        session["_flashes"] = [("info", "A note left for the next page")]
    flashed = client.post(
        "/subscribe",
        data={"email": "three@example.com", "csrf_token": token},
        follow_redirects=True,
    ).text
    assert "A note left for the next page" in flashed
    assert without_address(subscribe(client, "four@example.com").text, "four@example.com") == first


def test_enqueue_keeps_the_json_serializer_and_the_job_options(app, redis_client):
    job = enqueue(len, [1, 2], queue=MAIL_QUEUE, job_timeout=1234, description="counting")
    queue = Queue(MAIL_QUEUE, connection=redis_client, serializer=JSONSerializer)
    assert queue.job_ids == [job.id]
    stored = queue.fetch_job(job.id)
    assert stored is not None
    assert (stored.func_name, list(stored.args), stored.timeout) == ("builtins.len", [[1, 2]], 1234)
    assert stored.description == "counting"
    # A dependent job takes RQ's own path (it WATCHes); it must still be stored, deferred.
    later = enqueue(len, [3], queue=MAIL_QUEUE, depends_on=job)
    assert queue.fetch_job(later.id) is not None and later.id not in queue.job_ids
    assert db.session.scalar(sa.select(sa.literal(1))) == 1  # the app is still usable


def test_a_unique_job_is_one_round_trip_and_its_queue_stays_listed(app, redis_client, monkeypatch):
    from newsletter.tasks import queues
    from newsletter.tasks.mail import send_confirmation

    redis_client.flushdb()
    queues._LISTED.clear()
    first = enqueue(send_confirmation, 1, job_id="confirm-1-a")
    assert first is not None
    assert enqueue(send_confirmation, 1, job_id="confirm-1-a") is None  # unique: not twice
    mail = Queue(MAIL_QUEUE, connection=redis_client, serializer=JSONSerializer)
    assert mail.job_ids == [first.id]
    assert MAIL_QUEUE in [q.name for q in Queue.all(connection=redis_client)]
    # Listed a moment ago: the next sign-up's mail costs the Lua call alone, no SADD before it.
    sadds = _calls(redis_client, "sadd")
    assert enqueue(send_confirmation, 3, job_id="confirm-3-a") is not None
    assert _calls(redis_client, "sadd") == sadds

    # Redis loses everything: the next unique enqueue past the renewal lists the queue again.
    redis_client.flushdb()
    monkeypatch.setattr(queues, "QUEUE_LISTING_SECONDS", 0.0)
    assert enqueue(send_confirmation, 2, job_id="confirm-2-a") is not None
    assert MAIL_QUEUE in [q.name for q in Queue.all(connection=redis_client)]
    assert mail.job_ids == ["confirm-2-a"]
    assert _calls(redis_client, "sadd") > sadds


def _calls(client, command: str) -> int:
    stats = client.info("commandstats").get(f"cmdstat_{command}", {})
    return int(stats.get("calls", 0))
