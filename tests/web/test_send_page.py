"""The issue page's send status in the editor's words: the summary once every copy is
accounted for, the same on every reload; the weekly-slot button only with a slot."""

from __future__ import annotations

import re

from newsletter.extensions import db
from newsletter.issues.actions import create_issue
from newsletter.models import Subscriber, SubscriberStatus, utcnow
from tests.helpers import truncate_all
from tests.helpers.editors import editor_client, page_token, post_form


def test_a_finished_send_reads_sent_with_a_summary_the_same_on_every_reload(
    app, make_subscriber, run_jobs, inbox
):
    for n in range(3):
        make_subscriber(f"reader{n}@example.com")
    client = editor_client(app)
    issue = create_issue("Tip", "Body")
    page = f"/editor/issues/{issue.id}"
    answer = post_form(client, page, f"{page}/send")
    shown = client.get(answer.headers["Location"]).text
    assert "Sending to 3 subscribers now" in shown and "batch" not in shown
    assert ">Sending<" in shown and "in the last minute" in shown
    assert "0.00% of 0 delivered" not in shown and 'id="bounce-counts"' not in shown
    live = client.get(f"{page}/progress.json").get_json()
    assert live["label"] == "Sending" and not live["finished"] and live["summary"] is None
    assert live["rate_window"] == "in the last minute"
    run_jobs()
    inbox.wait_for(3)
    # One reader leaves after the send: counted under "unsubscribed since".
    reader = db.session.query(Subscriber).filter_by(email="reader0@example.com").one()
    reader.status, reader.unsubscribed_at = SubscriberStatus.UNSUBSCRIBED, utcnow()
    db.session.commit()
    done = client.get(f"{page}/progress.json").get_json()
    assert done["label"] == "Sent" and done["finished"]
    summary = done["summary"]
    assert (summary["sent"], summary["failed"], summary["bounced"]) == (3, 0, 0)
    assert summary["complaints"] == 0 and summary["unsubscribed"] == 1
    assert summary["average_per_s"] > 0
    assert client.get(f"{page}/progress.json").get_json()["summary"] == summary
    first, second = client.get(page).text, client.get(page).text
    pace = re.compile(r"[\d.]+ per second on average over the whole send \(\d+ s\)")
    assert pace.search(first).group(0) == pace.search(second).group(0)
    assert ">Sent<" in first and "Sent: every copy is accounted for" in first
    assert "sent sent" not in first.lower()
    assert 'id="send-card"' not in first  # no Pause or Cancel after the end
    assert f'href="/archive/{issue.slug}"' in first and 'href="/editor/stats"' in first


def test_the_weekly_slot_button_only_with_a_slot_and_saying_when(make_app):
    plain = make_app()
    with plain.app_context():
        truncate_all()
        client = editor_client(plain)
        issue = create_issue("Tip", "Body")
        shown = client.get(f"/editor/issues/{issue.id}").text
        assert "Mark ready for the weekly slot" not in shown
        db.session.remove()
    slotted = make_app(WEEKLY_SLOT="every monday at 09:00 in Europe/Berlin")
    with slotted.app_context():
        truncate_all()
        client = editor_client(slotted)
        issue = create_issue("Tip two", "Body")
        shown = client.get(f"/editor/issues/{issue.id}").text
        button = re.search(r'<button[^>]*id="mark-ready">(.*?)</button>', shown, re.S).group(1)
        assert "Mark ready for the weekly slot" in button
        at = re.search(r'<time datetime="([^"]+)"', button).group(1)
        assert at.endswith("+00:00") and ("T07:00" in at or "T08:00" in at)  # 09:00 Berlin
        page = f"/editor/issues/{issue.id}"
        client.post(f"{page}/ready", data={"csrf_token": page_token(client, page)})
        shown = client.get(page).text
        assert "goes out at the next weekly slot" in shown and "Mark ready" not in shown
