"""Every mail: built from templates by one function, multipart, UTF-8, absolute links, SMTP."""

from __future__ import annotations

import re

import pytest
from aiosmtpd.controller import Controller

from newsletter.extensions import db
from newsletter.mail.smtp import SMTPPermanentError, SMTPSender, SMTPTemporaryError
from newsletter.services import mailer
from newsletter.tasks.jobs import send_confirmation, send_welcome
from newsletter.tasks.queues import MAIL_QUEUE, enqueue
from tests.helpers import free_port, html_part, links, settings_from, text_part

BASE = "http://newsletter.test"


def _check_common(msg):
    assert msg["From"] == "Tip of the Week <tips@example.org>"
    assert msg["Date"] and msg["Message-ID"]
    assert msg.get_content_type() == "multipart/alternative"
    assert [p.get_content_type() for p in msg.iter_parts()] == ["text/plain", "text/html"]
    assert all(p.get_content_charset() == "utf-8" for p in msg.iter_parts())
    text, html = text_part(msg), html_part(msg)
    for provider in ("Gmail", "Outlook", "Apple Mail"):
        assert provider in text and provider in html
    assert "tips@example.org" in text and "tips@example.org" in html
    assert "<style" not in html and 'style="' in html  # CSS inlined
    hrefs = re.findall(r'href="([^"]+)"', html)
    assert hrefs and all(h.startswith(("http://", "https://", "mailto:")) for h in hrefs)
    assert links(msg) and all(u.startswith(BASE) for u in links(msg))


def test_a_queued_confirmation_reaches_the_smtp_server_complete(
    app, make_subscriber, run_jobs, inbox
):
    sub = make_subscriber("ann@example.com", status="pending")
    enqueue(send_confirmation, sub.id, queue=MAIL_QUEUE)
    assert run_jobs() == 1
    (msg,) = inbox.wait_for(1)
    assert msg["To"] == "ann@example.com"
    assert inbox.envelopes[0] == ("tips@example.org", ["ann@example.com"])
    raw = inbox.raw[0]  # SMTP's canonical form, which the sender relies on: CRLF only
    assert raw.count(b"\n") == raw.count(b"\r\n") == raw.count(b"\r") > 10
    _check_common(msg)
    assert any(u.startswith(BASE + "/confirm/") for u in links(msg))
    assert re.search(r'href="http://newsletter\.test/confirm/[^"]+"', html_part(msg))


def test_the_welcome_mail_carries_one_click_unsubscribe_headers(
    app, make_subscriber, run_jobs, inbox
):
    sub = make_subscriber("bo@example.com", status="confirmed")
    enqueue(send_welcome, sub.id, queue=MAIL_QUEUE)
    assert run_jobs() == 1
    (msg,) = inbox.wait_for(1)
    _check_common(msg)
    header = str(msg["List-Unsubscribe"]).strip()
    assert re.fullmatch(r"<http://newsletter\.test/unsubscribe/[A-Za-z0-9_.\-]+>", header)
    assert msg["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert header.strip("<>") in text_part(msg)


def test_jobs_recheck_state_and_skip_who_is_no_longer_due(app, make_subscriber, inbox):
    confirmed = make_subscriber(status="confirmed")
    pending = make_subscriber(status="pending")
    assert send_confirmation(confirmed.id).startswith("skipped")
    assert send_welcome(pending.id).startswith("skipped")
    assert send_confirmation(10_000).startswith("skipped")
    assert inbox.messages == []


def test_message_ids_are_unique(app):
    ids = {
        mailer().build("confirm", {"confirm_url": BASE + "/c"}, "a@example.com")["Message-ID"]
        for _ in range(20)
    }
    assert len(ids) == 20


def test_html_is_autoescaped_and_text_stays_plain(make_app):
    app = make_app(NEWSLETTER_NAME="<b>Tips & Tricks</b>")
    with app.app_context():
        rendered = mailer().render("welcome", {"unsubscribe_url": BASE + "/u", "name": "<i>x</i>"})
    assert "<b>Tips" not in rendered.html
    assert "&lt;b&gt;Tips &amp; Tricks&lt;/b&gt;" in rendered.html
    assert "<b>Tips & Tricks</b>" in rendered.text
    assert "<i>x</i>" not in rendered.html


class Refuser:
    def __init__(self, reply: str) -> None:
        self.reply = reply

    async def handle_RCPT(self, server, session, envelope, address, options):
        return self.reply


@pytest.mark.parametrize(
    ("reply", "error"),
    [("550 5.1.1 no such user", SMTPPermanentError), ("451 4.7.1 try later", SMTPTemporaryError)],
)
def test_smtp_refusals_say_whether_a_retry_can_help(reply, error):
    controller = Controller(Refuser(reply), hostname="127.0.0.1", port=free_port())
    controller.start()
    config = settings_from(
        SMTP_HOST="127.0.0.1",
        SMTP_PORT=str(controller.port),
        SMTP_SECURITY="none",
        SMTP_TIMEOUT="5",
        MAIL_FROM="Tips <tips@example.org>",
    )
    try:
        with SMTPSender(config) as smtp, pytest.raises(error) as caught:
            smtp.send("x@example.com", b"Subject: hi\r\n\r\nhello\r\n")
    finally:
        controller.stop()
    if error is SMTPPermanentError:
        assert caught.value.code == 550


def test_an_smtp_server_that_is_not_there_is_a_temporary_error():
    config = settings_from(
        SMTP_HOST="127.0.0.1",
        SMTP_PORT=str(free_port()),
        SMTP_SECURITY="none",
        SMTP_TIMEOUT="2",
        MAIL_FROM="Tips <tips@example.org>",
    )
    with SMTPSender(config) as smtp, pytest.raises(SMTPTemporaryError):
        smtp.send("x@example.com", b"Subject: hi\r\n\r\nhello\r\n")


def test_names_in_the_database_reach_the_welcome_mail_safely(app, make_subscriber, run_jobs, inbox):
    sub = make_subscriber("cy@example.com", status="confirmed", name='<script>alert("x")</script>')
    db.session.commit()
    enqueue(send_welcome, sub.id, queue=MAIL_QUEUE)
    run_jobs()
    (msg,) = inbox.wait_for(1)
    assert "<script>" not in html_part(msg)
