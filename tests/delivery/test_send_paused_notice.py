"""A send that pauses itself tells the editor: its page, the send.paused webhook, /healthz."""

from __future__ import annotations

import json

import pytest

from newsletter.extensions import db
from newsletter.issues.actions import issue_status
from newsletter.tasks.dispatch import resume_issue
from newsletter.webhooks.events import register_webhook
from tests.helpers.editors import editor_client
from tests.helpers.sending import queue_issue
from tests.webhooks.test_webhooks import Receiver


@pytest.fixture
def receiver():
    r = Receiver()
    yield r
    r.close()


def test_a_policy_refusal_pauses_and_the_editor_hears_of_it(
    fault_app, add_reader, run_jobs, sink, receiver
):
    register_webhook(db.session, receiver.url, ["send.paused"])
    db.session.commit()
    sink.mail_answer = "554 5.7.1 Service unavailable; client host blocked"
    issue_id, _ = queue_issue(3, add_reader)
    run_jobs()  # the send pauses; the webhook post goes out from the same worker
    found = issue_status(issue_id)
    assert found["status"] == "paused" and "5.7.1" in found["pause_reason"]
    assert (found["queued"], found["failed"]) == (3, 0)
    # The webhook: who, why, and that the send paused itself.
    (body,) = [json.loads(b) for _h, b in receiver.requests]
    assert body["event"] == "send.paused"
    assert body["data"]["issue_id"] == issue_id and body["data"]["automatic"] is True
    assert "client host blocked" in body["data"]["reason"]
    # The issue's page: a notice with the reason and what to do.
    client = editor_client(fault_app)
    page = client.get(f"/editor/issues/{issue_id}").text
    notice = page[page.index('id="paused-notice"') :]
    notice = notice[: notice.index("</div>")]
    assert " hidden" not in notice.split(">", 1)[0]
    assert "This send is paused." in notice and "client host blocked" in notice
    assert "then press Resume" in notice
    relay = page[page.index('id="relay-notice"') :]
    assert " hidden" in relay.split(">", 1)[0]
    # /healthz names it too.
    assert client.get("/healthz").get_json()["paused_sends"] == [
        {"issue": issue_id, "reason": found["pause_reason"]}
    ]
    # Lifted and resumed: every copy goes out once, and no second event.
    sink.mail_answer = None
    resume_issue(issue_id)
    run_jobs()
    sink.wait_for(3)
    assert issue_status(issue_id)["status"] == "sent"
    assert [json.loads(b)["event"] for _h, b in receiver.requests] == ["send.paused"]


def test_the_issue_page_says_the_relay_is_unreachable_while_the_send_waits(
    fault_app, add_reader, run_jobs, sink
):
    sink.ehlo_failures = 10**9  # the relay closes every session at EHLO: "421 too busy"
    issue_id, _ = queue_issue(2, add_reader)
    run_jobs()  # waits a little in the job, then leaves the next try to the reconciler
    found = issue_status(issue_id)
    assert found["status"] == "sending" and found["relay_waiting"] and "421" in found["relay_error"]
    client = editor_client(fault_app)
    page = client.get(f"/editor/issues/{issue_id}").text
    relay = page[page.index('id="relay-notice"') :]
    assert " hidden" not in relay.split(">", 1)[0]
    assert "The mail relay cannot be reached: the send is retrying by itself." in relay
    assert "421 too busy" in relay[: relay.index("</div>")]
    assert " hidden" in page[page.index('id="paused-notice"') :].split(">", 1)[0]
    progress = client.get(f"/editor/issues/{issue_id}/progress.json").get_json()
    assert progress["relay_waiting"] is True and progress["status"] == "sending"
    waits = client.get("/healthz").get_json()["relay_waits"]
    assert [w["issue"] for w in waits] == [issue_id] and "421" in waits[0]["error"]
    sink.ehlo_failures = 0
