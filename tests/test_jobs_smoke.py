"""The confirmation job builds a real mail and delivers it to a real SMTP server."""

from __future__ import annotations

from conftest import links, text_part

from newsletter.jobs import send_confirmation
from newsletter.queues import MAIL_QUEUE, enqueue


def test_a_queued_confirmation_reaches_the_smtp_server(app, make_subscriber, run_jobs, inbox):
    sub = make_subscriber("ann@example.com", status="pending")
    enqueue(send_confirmation, sub.id, queue=MAIL_QUEUE)
    assert run_jobs() == 1
    (msg,) = inbox.wait_for(1)
    assert msg["To"] == "ann@example.com"
    assert msg.get_content_type() == "multipart/alternative"
    assert [p.get_content_type() for p in msg.iter_parts()] == ["text/plain", "text/html"]
    assert any(u.startswith("http://newsletter.test/confirm/") for u in links(msg))
    assert "tips@example.org" in text_part(msg)
