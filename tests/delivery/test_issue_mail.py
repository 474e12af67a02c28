"""What a subscriber receives for an issue: headers, both parts, links, unsubscribe."""

from __future__ import annotations

import email
import re
from email import policy

from newsletter.delivery import message
from newsletter.extensions import db, settings
from newsletter.issues.actions import create_issue, preview, send_test
from newsletter.models import Subscriber, SubscriberStatus
from newsletter.services import mailer, tokens
from newsletter.tasks.dispatch import send_issue
from tests.helpers import html_part, links, text_part


def _send_one(make_subscriber, run_jobs, inbox, body="Try `git bisect` today."):
    sub = make_subscriber("reader@example.com", name="{{ config.SECRET_KEY }}")
    issue = create_issue("Tip: bisect — fast", body)
    send_issue(issue.id)
    run_jobs()
    (msg,) = inbox.wait_for(1)
    return sub, issue, msg


def test_an_issue_mail_has_every_header_and_both_parts(app, make_subscriber, run_jobs, inbox):
    sub, issue, msg = _send_one(make_subscriber, run_jobs, inbox)
    assert msg["Subject"] == "Tip: bisect — fast"
    assert msg["From"] == "Tip of the Week <tips@example.org>"
    assert msg["To"] == "reader@example.com"
    assert msg["Date"] and msg["MIME-Version"] == "1.0"
    assert msg.get_content_type() == "multipart/alternative"
    assert [p.get_content_type() for p in msg.iter_parts()] == ["text/plain", "text/html"]
    assert all(p.get_content_charset() == "utf-8" for p in msg.iter_parts())
    assert msg["List-Id"] == "Tip of the Week <tip-of-the-week.example.org>"
    assert re.fullmatch(r"<http://newsletter\.test/unsubscribe/[\w.-]+>", msg["List-Unsubscribe"])
    assert msg["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert re.fullmatch(
        rf"<issue-{issue.id}\.sub-{sub.id}\.[0-9a-f]{{8}}@example\.org>", msg["Message-ID"]
    )


def test_both_parts_carry_every_link_absolute(app, make_subscriber, run_jobs, inbox):
    body = "See [the archive](/archive) and [docs](https://git-scm.com/docs)."
    _sub, issue, msg = _send_one(make_subscriber, run_jobs, inbox, body)
    unsubscribe = msg["List-Unsubscribe"].strip("<>")
    text, html = text_part(msg), html_part(msg)
    for part in (text, html):
        assert unsubscribe in part
        assert f"http://newsletter.test/archive/{issue.slug}" in part  # view in the browser
        assert "http://newsletter.test/archive" in part
        assert "Forward it to a friend" in part and "http://newsletter.test/" in part
        assert "1 Example Street, 12345 Sampletown" in part
        assert "tips@example.org" in part  # safe-sender advice
    assert all(u.startswith(("http://", "https://")) for u in links(msg))
    hrefs = re.findall(r'(?:href|src)="([^"]+)"', html)
    assert hrefs and all(h.startswith(("http://", "https://", "mailto:")) for h in hrefs)
    assert "reader@example.com" not in f"http://newsletter.test/archive/{issue.slug}"


def test_template_syntax_in_a_body_or_name_is_plain_text(app, make_subscriber, run_jobs, inbox):
    # Only the name's merge field is allowed at save time (tests/delivery/test_merge_fields.py);
    # an issue stored before that check still goes out as written, never evaluated.
    sub = make_subscriber("reader@example.com", name="{{ config.SECRET_KEY }}")
    issue = create_issue("Tip: bisect — fast", "placeholder")
    issue.body_md = "Say {{ 7*7 }} {% if 1 %}x{% endif %}\n\nHi {{ name }}"
    db.session.commit()
    send_issue(issue.id)
    run_jobs()
    (msg,) = inbox.wait_for(1)
    text = text_part(msg)
    assert f"Hi {sub.name}" in text  # the reader's name is a value, never a template
    # The body's line as written; "49" would only show if the template were evaluated
    # (the line is checked, not the whole mail: a token may hold "49" by chance).
    (line,) = [line for line in text.splitlines() if line.startswith("Say")]
    assert line == "Say {{ 7*7 }} {% if 1 %}x{% endif %}"
    assert "test-secret-key" not in text_part(msg) + html_part(msg)


def test_the_unsubscribe_link_in_the_mail_works(app, client, make_subscriber, run_jobs, inbox):
    sub, _issue, msg = _send_one(make_subscriber, run_jobs, inbox)
    path = msg["List-Unsubscribe"].strip("<>").removeprefix("http://newsletter.test")
    response = client.post(
        path, data="List-Unsubscribe=One-Click", content_type="application/x-www-form-urlencoded"
    )
    assert response.status_code in (200, 303)

    db.session.expire_all()
    assert db.session.get(Subscriber, sub.id).status is SubscriberStatus.UNSUBSCRIBED


def test_a_resent_copy_has_the_same_message_id(app, make_subscriber):
    issue = create_issue("Same id", "Body")
    m = message.issue_message(mailer(), issue, b"key")
    first = m.bytes_for(7, "a@example.com", "tok")
    again = message.issue_message(mailer(), issue, b"key").bytes_for(7, "a@example.com", "tok")
    mid = re.compile(rb"Message-ID: (.+)\r\n")
    assert mid.search(first).group(1) == mid.search(again).group(1)
    other = m.bytes_for(8, "b@example.com", "tok")
    assert mid.search(first).group(1) != mid.search(other).group(1)


def test_preview_and_test_copy_match_the_real_mail(app, inbox):
    issue = create_issue("Preview me", "**Bold** tip")
    shown = preview(issue.id, mailer())
    assert shown.subject == "Preview me"
    assert "<strong>Bold</strong>" in shown.html and "Bold tip" in shown.text
    assert "http://newsletter.test/unsubscribe/" in shown.text
    # No reader's page: a sample link, which lands on the harmless bad-link page.
    assert "http://newsletter.test/manage/sample-token" in shown.text
    send_test(issue.id, "editor@example.com", mailer())
    (msg,) = inbox.wait_for(1)
    assert msg["Subject"] == "[Test] Preview me"
    assert "Bold tip" in text_part(msg)
    assert "http://newsletter.test/manage/test" in text_part(msg)


def test_each_copy_decodes_to_the_rendered_mail_with_its_own_link(app):
    """The fixed text is encoded once and only the link per copy: the reader sees one text."""
    # A long line with the link in its middle, and a link right at a line's end.
    body = "Word " * 40 + "\n\nÜnïcode and = signs, trailing space \n\n" + "x" * 150
    issue = create_issue("Encoding", body)
    m = message.issue_message(mailer(), issue, b"key")
    base = settings(app).base_url
    rendered = message.render_issue(
        mailer(),
        issue.subject,
        issue.body_md,
        issue.slug,
        base + "/unsubscribe/TOKEN-PLACEHOLDER",
        base + "/manage/MANAGE-PLACEHOLDER",
    )
    long = "NDI.Apra96592zcJNE6QtjexspU4PeE" * 3
    for token, manage_token in (("abc.def", "ghi.jkl"), (long, long[::-1]), ("x", long)):
        raw = m.bytes_for(42, "reader@example.com", token, manage_token=manage_token)
        # SMTP's canonical form, which the sender relies on: no bare CR or LF anywhere.
        assert raw.count(b"\n") == raw.count(b"\r\n") == raw.count(b"\r")
        body_lines = raw.split(b"\r\n\r\n", 1)[1].split(b"\r\n")
        assert max(len(line) for line in body_lines) <= 76  # RFC 2045 for quoted-printable
        msg = email.message_from_bytes(raw, policy=policy.SMTP)
        text = msg.get_body(("plain",)).get_content()
        html = msg.get_body(("html",)).get_content()

        def personal(s: str, token: str = token, manage_token: str = manage_token) -> str:
            s = s.replace("TOKEN-PLACEHOLDER", token).replace("MANAGE-PLACEHOLDER", manage_token)
            return s.replace("\r\n", "\n")

        assert text.replace("\r\n", "\n") == personal(rendered.text)
        assert html.replace("\r\n", "\n") == personal(rendered.html)
        assert f"{base}/manage/{manage_token}" in text and f"{base}/manage/{manage_token}" in html


def test_each_reader_gets_their_own_manage_link(app, make_subscriber, run_jobs, inbox):
    subs = [make_subscriber(f"r{i}@example.com") for i in range(2)]
    issue = create_issue("Yours", "Body")
    send_issue(issue.id)
    run_jobs()
    found = {}
    for msg in inbox.wait_for(2):
        text, html = text_part(msg), html_part(msg)
        (token,) = re.findall(r"http://newsletter\.test/manage/([\w.-]+)", text)
        assert f'href="http://newsletter.test/manage/{token}"' in html
        assert "Change your name or address, pause, or leave" in text
        found[msg["To"]] = tokens().read_manage(token).subscriber_id
    assert found == {s.email: s.id for s in subs}


def test_the_forward_line_invites_a_friend_to_subscribe(app, make_subscriber, run_jobs, inbox):
    _sub, _issue, msg = _send_one(make_subscriber, run_jobs, inbox)
    text = text_part(msg)
    assert "Forward it to a friend" in text
    footer = text.replace("\r\n", "\n").split("\n--\n", 1)[1]
    for line in footer.splitlines():  # prose wrapped for reading, URLs never broken
        assert len(line) <= 72 or " " not in line, line
    line = text.split("Forward it to a friend", 1)[1].split("\n\n", 1)[0]
    assert "http://newsletter.test/" in line  # the subscribe link, right with it
    assert re.search(
        r"Forward it to a friend[^<]*<a [^>]*href=\"http://newsletter\.test/\"", html_part(msg)
    )
