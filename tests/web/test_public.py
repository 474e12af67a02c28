"""A reader subscribes, confirms and leaves, following the links in the mail they receive."""

from __future__ import annotations

import logging
import os
import re
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request

import sqlalchemy as sa
from werkzeug.serving import make_server

from newsletter.extensions import db
from newsletter.models import Issue, IssueStatus, Subscriber, SubscriberStatus, utcnow
from newsletter.services import tokens
from newsletter.tasks.worker import build_worker
from tests.conftest import app_config
from tests.helpers import free_port, html_part
from tests.helpers.readers import BASE_URL, link_to, subscribe, subscriber, without_address


def _form_action(html: str) -> str:
    match = re.search(r'<form method="post" action="([^"]+)"', html)
    assert match, "no form on the page"
    return match.group(1)


def test_a_reader_follows_the_links_in_the_mails_from_subscribe_to_one_click_unsubscribe(
    app, client, inbox, run_jobs
):
    answer = subscribe(client, "Ann@Example.com", "Ann")
    assert answer.status_code == 200
    assert "Check your inbox" in answer.get_data(as_text=True)
    assert subscriber("ann@example.com").status is SubscriberStatus.PENDING

    assert run_jobs() == 1
    (confirmation,) = inbox.wait_for(1)
    assert confirmation["To"] == "ann@example.com"
    confirm_path = link_to(confirmation, "/confirm/")
    assert BASE_URL + confirm_path in html_part(confirmation)

    # A mail scanner (or the reader on another device) fetching the link changes nothing.
    scanner = app.test_client(use_cookies=False)
    page = scanner.get(confirm_path)
    assert page.status_code == 200
    assert "Confirm my subscription" in page.get_data(as_text=True)
    assert subscriber("ann@example.com").status is SubscriberStatus.PENDING
    assert _form_action(page.get_data(as_text=True)) == confirm_path

    # The browser that signed up confirms with the one click in the mail.
    welcome_page = client.get(confirm_path)
    assert welcome_page.status_code == 200
    body = welcome_page.get_data(as_text=True)
    assert "You're subscribed" in body
    for provider in ("Gmail", "Outlook", "Apple Mail", "Yahoo"):
        assert provider in body
    assert "tips@example.org" in body
    assert subscriber("ann@example.com").status is SubscriberStatus.CONFIRMED

    assert run_jobs() == 1
    welcome = inbox.wait_for(2)[1]
    assert welcome["To"] == "ann@example.com"
    header_url = str(welcome["List-Unsubscribe"]).strip().strip("<>")
    assert header_url.startswith(BASE_URL + "/unsubscribe/")
    assert welcome["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert link_to(welcome, "/unsubscribe/") == header_url[len(BASE_URL) :]

    # The mail provider's one-click POST: no cookie, no CSRF token, answered 200 with a page.
    provider = app.test_client(use_cookies=False)
    done = provider.post(
        header_url[len(BASE_URL) :],
        data="List-Unsubscribe=One-Click",
        content_type="application/x-www-form-urlencoded",
    )
    assert done.status_code == 200
    assert "Location" not in done.headers
    assert "Set-Cookie" not in done.headers
    assert "You're unsubscribed" in done.get_data(as_text=True)
    assert subscriber("ann@example.com").status is SubscriberStatus.UNSUBSCRIBED
    assert run_jobs() == 0  # leaving sends nothing


def test_the_answer_is_the_same_page_for_new_pending_and_confirmed_addresses(
    app, client, make_subscriber
):
    make_subscriber("pending@example.com", status="pending")
    make_subscriber("confirmed@example.com", status="confirmed")
    pages = {
        email: subscribe(client, email)
        for email in ("new@example.com", "pending@example.com", "confirmed@example.com")
    }
    bodies = {
        e: (r.status_code, without_address(r.get_data(as_text=True), e)) for e, r in pages.items()
    }
    assert len(set(bodies.values())) == 1
    assert bodies["new@example.com"][0] == 200


def test_the_honeypot_gets_the_usual_answer_and_stores_nothing(app, client, run_jobs):
    answer = subscribe(client, "bot@example.com", website="http://spam.example")
    assert answer.status_code == 200
    assert "Check your inbox" in answer.get_data(as_text=True)
    assert subscriber("bot@example.com") is None
    assert run_jobs() == 0


def test_the_front_page_lists_the_latest_sent_tips_only(app, client):
    for n in range(7):
        db.session.add(
            Issue(
                slug=f"tip-{n}",
                subject=f"Tip number {n}",
                body_md="x",
                status=IssueStatus.SENT,
                sent_at=utcnow().replace(day=1, hour=n),
            )
        )
    db.session.add(Issue(slug="draft", subject="A secret draft", body_md="x"))
    db.session.commit()
    page = client.get("/").get_data(as_text=True)
    assert '<label for="email">' in page
    assert 'href="/archive/tip-6"' in page and 'href="/archive/tip-2"' in page
    assert "tip-1" not in page and "A secret draft" not in page
    assert page.index("Tip number 6") < page.index("Tip number 2")


def test_confirming_twice_shows_the_welcome_page_and_sends_one_welcome(
    app, client, make_subscriber, run_jobs, inbox
):
    sub = make_subscriber("bo@example.com", status="pending")
    path = f"/confirm/{tokens().confirm_token(sub.id, sub.version)}"
    assert client.post(path).status_code == 200
    again = client.post(path)
    assert again.status_code == 200
    assert "You're subscribed" in again.get_data(as_text=True)
    assert "already subscribed" in client.get(path).get_data(as_text=True)
    assert run_jobs() == 1
    assert len(inbox.wait_for(1)) == 1


def test_replaying_an_old_confirm_link_after_unsubscribing_changes_nothing(
    app, client, make_subscriber, run_jobs
):
    sub = make_subscriber("cy@example.com", status="pending")
    old = f"/confirm/{tokens().confirm_token(sub.id, sub.version)}"
    assert client.post(old).status_code == 200
    assert client.post(f"/unsubscribe/{tokens().unsubscribe_token(sub.id)}").status_code == 200
    run_jobs()
    replay = client.post(old)
    assert replay.status_code == 400
    assert "out of date" in replay.get_data(as_text=True)
    assert client.get(old).status_code == 400
    assert subscriber("cy@example.com").status is SubscriberStatus.UNSUBSCRIBED
    assert run_jobs() == 0


def test_an_expired_confirm_link_offers_a_new_one_which_works(make_app, inbox):
    app = make_app(CONFIRM_MAX_AGE="1")
    client = app.test_client()
    with app.app_context():
        db.session.execute(sa.delete(Subscriber).where(Subscriber.email == "dee@example.com"))
        sub = Subscriber(email="dee@example.com", status=SubscriberStatus.PENDING)
        db.session.add(sub)
        db.session.commit()
        token = tokens().confirm_token(sub.id, sub.version)
        db.session.commit()
    time.sleep(2.1)
    page = client.get(f"/confirm/{token}")
    assert page.status_code == 410
    assert "expired" in page.get_data(as_text=True)
    assert client.post(f"/confirm/{token}").status_code == 410
    with app.app_context():
        assert subscriber("dee@example.com").status is SubscriberStatus.PENDING

    offer = page.get_data(as_text=True)
    assert 'action="/confirm/resend"' in offer
    resent = client.post("/confirm/resend", data={"token": token})
    assert resent.status_code == 200
    assert "Check your inbox" in resent.get_data(as_text=True)
    build_worker(app).work(burst=True, with_scheduler=False)
    (msg,) = inbox.wait_for(1)
    fresh = link_to(msg, "/confirm/")
    assert fresh != f"/confirm/{token}"
    assert client.post(fresh).status_code == 200
    with app.app_context():
        assert subscriber("dee@example.com").status is SubscriberStatus.CONFIRMED


def test_unsubscribe_page_has_one_button_and_changes_nothing_until_pressed(
    app, client, make_subscriber
):
    sub = make_subscriber("eve@example.com")
    path = f"/unsubscribe/{tokens().unsubscribe_token(sub.id)}"
    page = client.get(path)
    assert page.status_code == 200
    assert page.get_data(as_text=True).count("<button") == 1
    assert _form_action(page.get_data(as_text=True)) == path
    assert subscriber("eve@example.com").status is SubscriberStatus.CONFIRMED


def test_one_click_unsubscribe_works_as_multipart_too(app, make_subscriber):
    sub = make_subscriber("fay@example.com")
    provider = app.test_client(use_cookies=False)
    answer = provider.post(
        f"/unsubscribe/{tokens().unsubscribe_token(sub.id)}",
        data={"List-Unsubscribe": "One-Click"},
        content_type="multipart/form-data",
    )
    assert answer.status_code == 200
    assert "Set-Cookie" not in answer.headers
    assert subscriber("fay@example.com").status is SubscriberStatus.UNSUBSCRIBED


def test_resubscribing_after_unsubscribe_goes_through_confirmation_again(
    app, client, make_subscriber, run_jobs, inbox
):
    sub = make_subscriber("gus@example.com")
    path = f"/unsubscribe/{tokens().unsubscribe_token(sub.id)}"
    page = client.post(path).get_data(as_text=True)
    resubscribe = re.search(r'action="(/resubscribe/[^"]+)"', page)
    assert resubscribe, "no way to resubscribe on the page"
    answer = client.post(resubscribe.group(1))
    assert answer.status_code == 200
    assert "Check your inbox" in answer.get_data(as_text=True)
    # Nothing changes until the link in the mail is confirmed.
    assert subscriber("gus@example.com").status is SubscriberStatus.UNSUBSCRIBED
    assert run_jobs() == 1
    (msg,) = inbox.wait_for(1)
    assert client.post(link_to(msg, "/confirm/")).status_code == 200
    assert subscriber("gus@example.com").status is SubscriberStatus.CONFIRMED


def test_safe_sender_page_names_the_from_address_for_each_provider(app, client):
    page = client.get("/safe-sender")
    assert page.status_code == 200
    body = page.get_data(as_text=True)
    assert "tips@example.org" in body
    for provider in ("Gmail", "Outlook", "Apple Mail", "Yahoo"):
        assert provider in body


def test_healthz_says_ok_when_database_and_redis_answer(app, client):
    answer = client.get("/healthz")
    assert answer.status_code == 200
    body = answer.get_json()
    assert body["database"] == "ok" and body["redis"] == "ok"
    assert body["paused_sends"] == []
    assert body["workers"]["alive"] == 0  # no worker runs in this test


def test_healthz_answers_503_naming_redis_when_it_is_down(make_app, tmp_path):
    app = make_app(REDIS_URL=f"redis://127.0.0.1:{free_port()}/0")
    answer = app.test_client().get("/healthz")
    assert answer.status_code == 503
    body = answer.get_json()
    assert body["database"] == "ok"
    assert body["redis"].startswith("error")


def test_healthz_answers_503_naming_the_database_when_it_is_down(make_app, tmp_path):
    app = make_app(DATABASE_URL=f"sqlite:///{tmp_path}/missing-dir/none/x.db")
    answer = app.test_client().get("/healthz")
    assert answer.status_code == 503
    body = answer.get_json()
    assert body["database"].startswith("error")
    assert body["redis"] == "ok"


def test_logs_of_confirm_and_unsubscribe_requests_hold_no_token(
    app, client, make_subscriber, caplog
):
    sub = make_subscriber("hal@example.com", status="pending")
    confirm_token = tokens().confirm_token(sub.id, sub.version)
    unsub_token = tokens().unsubscribe_token(sub.id)
    caplog.set_level(logging.DEBUG)
    # Access-log lines as werkzeug and gunicorn write them, plus our own.
    logging.getLogger("werkzeug").info(
        '%s - - [%s] "%s" %s -', "127.0.0.1", "now", f"GET /confirm/{confirm_token} HTTP/1.1", 200
    )
    logging.getLogger("gunicorn.access").info(
        "%(r)s %(s)s", {"r": f"POST /unsubscribe/{unsub_token} HTTP/1.1", "s": "200"}
    )
    logging.getLogger("newsletter.views").warning("odd request to /resubscribe/%s", unsub_token)
    client.get(f"/confirm/{confirm_token}")
    client.post(f"/unsubscribe/{unsub_token}")
    text = "\n".join(r.getMessage() for r in caplog.records)
    assert "/confirm/[redacted]" in text and "/unsubscribe/[redacted]" in text
    assert confirm_token not in text
    assert unsub_token not in text


def test_a_real_server_access_log_holds_no_token(app, make_subscriber, caplog):
    sub = make_subscriber("ida@example.com", status="pending")
    token = tokens().confirm_token(sub.id, sub.version)
    db.session.commit()  # the server's thread needs SQLite's write lock
    server = make_server("127.0.0.1", free_port(), app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    caplog.set_level(logging.INFO)
    thread.start()
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{server.port}/confirm/{token}") as r:
            assert r.status == 200
    finally:
        server.shutdown()
        thread.join()
    lines = [r.getMessage() for r in caplog.records if r.name == "werkzeug"]
    assert any("/confirm/[redacted]" in line for line in lines), lines
    assert all(token not in r.getMessage() for r in caplog.records)


def _variants(token: str) -> list[str]:
    return [
        f"/unsubscribe//{token}",
        f"/UNSUBSCRIBE/{token}",
        f"/Confirm/{token}",
        f"/confirm/{token}/",
        f"//confirm//{token}",
        f"/unsubscribe%2F{token}",
        f"/unsubscribe%2f{token}",
        f"/%75nsubscribe/{token}",
        f"/confirm/{token}?utm=x",
        f"/confirm/resend?token={token}",
    ]


def test_every_spelling_of_a_token_path_is_redacted_in_our_log_lines(app, caplog):
    confirm, unsub = tokens().confirm_token(7, 1), tokens().unsubscribe_token(7)
    caplog.set_level(logging.INFO)
    for token in (confirm, unsub):
        for path in _variants(token):
            logging.getLogger("gunicorn.access").info(
                '%(h)s "%(r)s" %(s)s "%(f)s" "%(a)s"',
                {
                    "h": "1.2.3.4",
                    "r": f"GET {path} HTTP/1.1",
                    "s": "400",
                    "f": f"https://x.test{path}",
                    "a": f"curl {token}",
                },
            )
    text = "\n".join(r.getMessage() for r in caplog.records)
    assert confirm not in text and unsub not in text
    assert text.count("[redacted]") == 2 * len(_variants(confirm)) * 3
    # Only tokens go: the rest of the line stays useful.
    assert '"GET /UNSUBSCRIBE/[redacted] HTTP/1.1" 400' in text
    assert "/confirm/resend?token=[redacted]" in text


def test_a_real_gunicorn_access_log_holds_no_token_in_any_field(
    app, make_subscriber, tmp_path, _migrated, redis_url, smtp_controller
):
    sub = make_subscriber("jo@example.com", status="pending")
    token = tokens().unsubscribe_token(sub.id)
    db.session.commit()
    env = {**os.environ, **app_config(tmp_path, _migrated, redis_url, smtp_controller[0].port)}
    port, log_file = free_port(), tmp_path / "access.log"
    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "gunicorn",
            "--bind",
            f"127.0.0.1:{port}",
            "--workers",
            "1",
            "--access-logfile",
            str(log_file),
            "newsletter.wsgi:app",
        ],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        _wait_for_port(port)
        for path in _variants(token):
            request = urllib.request.Request(
                f"http://127.0.0.1:{port}{path}",
                headers={"Referer": f"https://mail.test{path}", "User-Agent": f"ua {token}"},
            )
            try:
                urllib.request.urlopen(request, timeout=10).close()
            except urllib.error.HTTPError as exc:
                exc.close()
    finally:
        server.terminate()
        _, errors = server.communicate(timeout=30)
    lines = log_file.read_text().splitlines()
    assert len(lines) >= len(_variants(token)), lines  # redirects add lines
    assert all("[redacted]" in line for line in lines), lines
    assert token not in log_file.read_text() and token not in errors.decode()


def _wait_for_port(port: int) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.1)
    raise AssertionError("gunicorn did not start")
