"""Preflight before a test or a send: warnings the editor may override, failures that block,
and every link asked by a job against a real HTTP server."""

from __future__ import annotations

import http.server
import threading
from collections.abc import Iterator

import pytest
import sqlalchemy as sa

from newsletter.extensions import db, settings
from newsletter.issues.actions import create_issue
from newsletter.models import Delivery, Issue, IssueStatus
from tests.helpers import override_settings
from tests.helpers.editors import editor_client, page_token, post_form
from tests.helpers.receivers import QuietHTTPServer

MESSY = (
    "TODO: a better intro. Lorem ipsum.\n\n![](https://example.org/chart.png)\n\n"
    "Good tip TK.\n\n" + "A long paragraph of words. " * 4500
)


class _Links(http.server.BaseHTTPRequestHandler):
    asked: list[tuple[str, str]] = []

    def _answer(self, body: bool) -> None:
        self.asked.append((self.command, self.path))
        code = 200 if self.path.startswith("/ok") else 404
        self.send_response(code)
        self.send_header("Content-Length", "2")
        self.end_headers()
        if body:
            self.wfile.write(b"hi")

    def do_HEAD(self) -> None:  # noqa: N802 (the stdlib's name)
        self._answer(False)

    def do_GET(self) -> None:  # noqa: N802
        self._answer(True)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def site() -> Iterator[str]:
    server = QuietHTTPServer(("127.0.0.1", 0), _Links)
    _Links.asked = []
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def _queued(issue_id: int) -> int:
    return db.session.scalar(
        sa.select(sa.func.count()).select_from(Delivery).where(Delivery.issue_id == issue_id)
    )


def test_warnings_show_before_the_buttons_and_stop_a_send_until_overridden(app, make_subscriber):
    make_subscriber("ana@example.com")
    client = editor_client(app)
    issue = create_issue("Draft tip", MESSY)
    page_url = f"/editor/issues/{issue.id}"
    page = client.get(page_url).get_data(as_text=True)
    assert page.index('id="preflight"') < page.index('id="send-now"')
    assert "Gmail clips a mail over 102 KB" in page
    assert "1 image(s) without alt text" in page and "chart.png" in page
    assert "Placeholder text left in: TODO, Lorem, TK." in page
    refused = post_form(client, page_url, f"{page_url}/send")
    assert refused.status_code == 409
    said = refused.get_data(as_text=True)
    assert "Preflight found something to look at" in said and "Send anyway" in said
    db.session.expire_all()
    assert db.session.get(Issue, issue.id).status is IssueStatus.DRAFT
    assert _queued(issue.id) == 0
    sent = post_form(client, page_url, f"{page_url}/send", anyway="1")
    assert sent.status_code == 302
    flashed = client.get(page_url).get_data(as_text=True)
    assert "Sent anyway despite:" in flashed and "Placeholder text left in" in flashed
    assert _queued(issue.id) == 1


def test_a_clean_issue_goes_without_a_box_to_tick(app, make_subscriber):
    make_subscriber("ana@example.com")
    client = editor_client(app)
    issue = create_issue("Clean tip", "Use `git switch -`: the branch you were on.")
    page_url = f"/editor/issues/{issue.id}"
    page = client.get(page_url).get_data(as_text=True)
    assert "Nothing to look at" in page and 'name="anyway"' not in page
    assert post_form(client, page_url, f"{page_url}/send").status_code == 302
    assert _queued(issue.id) == 1


def test_no_postal_address_in_production_blocks_tests_and_sends(app, make_subscriber, inbox):
    make_subscriber("ana@example.com")
    override_settings(app, postal_address="", environment="production")
    client = editor_client(app)
    issue = create_issue("Tip", "Body")
    page_url = f"/editor/issues/{issue.id}"
    page = client.get(page_url).get_data(as_text=True)
    assert "Blocks sending" in page and "No postal address" in page
    for action, extra in (("send", {"anyway": "1"}), ("test", {"to": "me@example.net"})):
        answer = post_form(client, page_url, f"{page_url}/{action}", **extra)
        assert answer.status_code == 409
        assert "Not sent: No postal address" in answer.get_data(as_text=True)
    assert _queued(issue.id) == 0
    assert inbox.messages == []  # a test copy is sent within the request: none left
    override_settings(app, environment="development")
    page = client.get(page_url).get_data(as_text=True)
    assert "Warning:</strong> No postal address (required in production)" in page


def test_links_are_checked_in_a_job_and_a_broken_one_is_named(app, run_jobs, site, make_subscriber):
    make_subscriber("ana@example.com")
    assert "127.0.0.1" in settings(app).webhook_allow_hosts  # as an operator allows a host
    client = editor_client(app)
    body = f"[fine]({site}/ok) and [gone]({site}/missing) and [meta](http://169.254.169.254/x)"
    issue = create_issue("Links", body)
    page_url = f"/editor/issues/{issue.id}"
    token = page_token(client, page_url)
    first = client.post(f"{page_url}/links", data={"csrf_token": token}).get_json()
    assert first == {"state": "checking", "links": []}
    assert _Links.asked == []  # the page never waits on a link
    # Before the job has run, the send is not held up by links it has no answer for.
    run_jobs()
    done = client.post(f"{page_url}/links", data={"csrf_token": token}).get_json()
    assert done["state"] == "done"
    found = {r["url"]: r for r in done["links"]}
    assert found[f"{site}/ok"]["ok"] and found[f"{site}/ok"]["status"] == 200
    assert found[f"{site}/missing"] == {
        "url": f"{site}/missing",
        "status": 404,
        "ok": False,
        "error": "",
    }
    assert found["http://169.254.169.254/x"]["error"] == "not checked: internal address"
    # HEAD first; GET only when HEAD was not answered well.
    assert ("HEAD", "/ok") in _Links.asked and ("GET", "/ok") not in _Links.asked
    assert ("HEAD", "/missing") in _Links.asked and ("GET", "/missing") in _Links.asked
    refused = post_form(client, page_url, f"{page_url}/send")
    assert refused.status_code == 409
    assert f"{site}/missing (404)" in refused.get_data(as_text=True)
    assert _queued(issue.id) == 0


def test_an_internal_link_is_not_fetched_without_the_allow_list(app, run_jobs, site):
    override_settings(app, webhook_allow_hosts=frozenset())
    client = editor_client(app)
    issue = create_issue("Links", f"[fine]({site}/ok)")
    page_url = f"/editor/issues/{issue.id}"
    token = page_token(client, page_url)
    client.post(f"{page_url}/links", data={"csrf_token": token})
    run_jobs()
    done = client.post(f"{page_url}/links", data={"csrf_token": token}).get_json()
    assert done["links"][0]["error"] == "not checked: internal address"
    assert _Links.asked == []


def test_the_cli_prints_warnings_to_stderr_and_sends(app, make_subscriber):
    make_subscriber("ana@example.com")
    runner = app.test_cli_runner()
    issue = create_issue("Tip", "TODO write this")
    said = runner.invoke(args=["issues", "send", str(issue.id)])
    assert said.exit_code == 0, said.output
    assert "warning: Placeholder text left in: TODO." in said.stderr
    assert "warning" not in said.stdout


def test_the_cli_refuses_a_send_preflight_blocks(app, make_subscriber):
    make_subscriber("ana@example.com")
    override_settings(app, postal_address="", environment="production")
    runner = app.test_cli_runner()
    other = create_issue("Tip two", "Done.")
    refused = runner.invoke(args=["issues", "send", str(other.id)])
    assert refused.exit_code != 0
    assert "not sent: No postal address" in refused.output
    assert _queued(other.id) == 0
