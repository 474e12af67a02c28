"""The editor's Sending health page and the dashboard's line: what an editor reads."""

from __future__ import annotations

import html
import re

import pytest

from newsletter.extensions import db
from tests.doctor.relays import RefusingServer
from tests.doctor.world import publish_everything
from tests.helpers import csrf_from, free_port, truncate_all
from tests.helpers.editors import editor_client

BLOCK = re.compile(r"</?(p|div|li|ul|h\d|br|header|footer|nav|main|form|table|tr|td|th)\b[^>]*>")


def visible(response) -> str:
    """Return the page's text as a reader sees it: no tags, entities decoded, spaces collapsed."""
    body = response.get_data(as_text=True)
    body = re.sub(r"<(style|script|title)\b.*?</\1>", " ", body, flags=re.S)
    body = re.sub(BLOCK, " ", body)
    return " ".join(html.unescape(re.sub(r"<[^>]+>", "", body)).split())


@pytest.fixture
def world(make_app, dns_server, relay, zone, dkim_keys, dkim_pem):
    """An app whose relay counts sessions and whose DNS answers from the test zone."""

    def build(**settings):
        server = relay()
        values = {
            "DNS_NAMESERVER": dns_server.address,
            "SMTP_PORT": str(server.port),
            "MAIL_FROM": "Example Tips <tips@example.com>",
            "DKIM_DOMAIN": "example.com",
            "DKIM_SELECTOR": "tips",
            "DKIM_PRIVATE_KEY": dkim_pem,
            **settings,
        }
        publish_everything(zone, dkim_keys[0])
        return make_app(**values), server

    return build


@pytest.fixture
def site(world):
    app, server = world()
    with app.app_context():
        truncate_all()
        yield app, server
        db.session.rollback()


def test_the_page_needs_a_login_and_runs_nothing_for_a_stranger(site):
    app, server = site
    answer = app.test_client().get("/editor/doctor")
    assert answer.status_code == 302
    assert "/editor/login" in answer.headers["Location"]
    assert server.recorder.ehlos == 0


def test_the_dashboard_only_reads_the_last_result(site, zone):
    app, server = site
    text = visible(editor_client(app).get("/editor/"))
    assert "Sending health: not checked in the last few minutes; open it to run the checks" in text
    assert server.recorder.ehlos == 0
    assert zone.queries == []


def test_the_page_shows_every_check_and_keeps_the_result(site, smtp_controller):
    app, server = site
    client = editor_client(app)
    answer = client.get("/editor/doctor")
    assert answer.status_code == 200
    # No script but the editor's own, nonce-tagged (the nav's menu and local times).
    assert re.findall(r"<script(?![^>]*\bnonce=)", answer.get_data(as_text=True)) == []
    assert "nonce-" in answer.headers["Content-Security-Policy"]
    text = visible(answer)
    assert "Sending health" in text
    assert "checked just now; the result is kept 5 minutes." in text
    for line in [
        "warn settings: to change before production: NEWSLETTER_ENV, BASE_URL",
        f"ok smtp: 127.0.0.1:{server.port} answered EHLO; nothing was sent",
        "ok spf: example.com authorises the relay 127.0.0.1 (ip4:127.0.0.1); ends -all",
        "ok dkim: d=example.com s=tips: the published rsa key (2048 bits) matches",
        "ok dmarc: p=reject at _dmarc.example.com",
        "ok bounces: bounces to tips@example.com arrive at example.com's MX (10 mx.example.com)",
    ]:
        assert line in text, line
    assert server.recorder.ehlos == 1
    assert server.recorder.mail_from == []

    again = visible(client.get("/editor/doctor"))
    assert "checked just now" in again
    assert server.recorder.ehlos == 1  # the cached result, no new session with the relay

    dashboard = visible(client.get("/editor/"))
    assert "Sending health: 1 to look at (settings) · checked just now" in dashboard

    token = csrf_from(client.get("/editor/doctor").get_data(as_text=True))
    answer = client.post("/editor/doctor", data={"csrf_token": token})
    assert answer.status_code == 302
    assert answer.headers["Location"].endswith("/editor/doctor")
    assert server.recorder.ehlos == 2


def test_check_again_without_the_form_token_is_refused(site):
    app, server = site
    answer = editor_client(app).post("/editor/doctor")
    assert answer.status_code == 400
    assert server.recorder.ehlos == 0


def test_what_a_relay_says_is_shown_escaped(world):
    refusing = RefusingServer("554 <script>alert(1)</script> go away")
    app, _server = world(SMTP_PORT=str(refusing.port))
    try:
        with app.app_context():
            truncate_all()
            answer = editor_client(app).get("/editor/doctor")
            db.session.rollback()
    finally:
        refusing.close()
    body = answer.get_data(as_text=True)
    assert "<script>alert(1)</script>" not in body
    assert "554 &lt;script&gt;alert(1)&lt;/script&gt; go away" in body
    assert "1 failed (smtp)" in visible(answer)


def test_without_redis_the_page_still_runs_the_checks(world):
    app, server = world(REDIS_URL=f"redis://127.0.0.1:{free_port()}/0")
    with app.app_context():
        truncate_all()
        client = editor_client(app)
        answer = client.get("/editor/doctor")
        db.session.rollback()
    assert answer.status_code == 200
    assert f"ok smtp: 127.0.0.1:{server.port} answered EHLO" in visible(answer)
