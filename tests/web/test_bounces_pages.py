"""Editors see what came back: /editor/bounces, one bounce with its raw notification, the
person's and the issue's counts, Reactivate, and GET /api/v1/bounces; in Chromium too."""

from __future__ import annotations

import os
from typing import Any

import pytest
import sqlalchemy as sa

from newsletter.bounces.intake import Notice, apply_notice
from newsletter.delivery.message import MessageIds
from newsletter.extensions import db, settings
from newsletter.issues.actions import create_issue
from newsletter.models import BounceKind, Delivery, Subscriber, SubscriberStatus, utcnow
from newsletter.tasks.dispatch import send_issue
from tests.helpers import truncate_all
from tests.helpers.editors import PASSWORD, add_editor, bearer, editor_client

RAW = (
    "From: MAILER-DAEMON@mx.example.com\r\nSubject: Undelivered Mail\r\n\r\n"
    "<script>alert('x')</script> 550 5.1.1 <ada@example.com>: user unknown\r\n"
)


def _sent_world(app: Any, drain: Any) -> tuple[int, list[Subscriber]]:
    """Two readers, one issue sent to them through the real worker path."""
    people = [
        Subscriber(
            email=f"{n}@example.com",
            name=n,
            status=SubscriberStatus.CONFIRMED,
            confirmed_at=utcnow(),
        )
        for n in ("ada", "bob")
    ]
    db.session.add_all(people)
    db.session.commit()
    issue = create_issue("Week one", "Body")
    send_issue(issue.id)
    drain()
    return issue.id, people


def _bounce(app: Any, issue_id: int, sub: Subscriber, kind: BounceKind, raw: str = RAW) -> str:
    domain = settings(app).mail_from.rpartition("@")[2].rstrip(">")
    mid = MessageIds(issue_id, settings(app).secret_key.encode(), domain)(sub.id)
    notice = Notice(
        kind=kind, source="dsn", diagnostic="user unknown", status_code="5.1.1",
        message_id=mid, raw=raw,
    )  # fmt: skip
    said = apply_notice(db.session(), notice, settings(app))
    db.session.commit()
    return said


@pytest.fixture
def world(app, run_jobs):
    with app.app_context():
        truncate_all()
        issue_id, people = _sent_world(app, run_jobs)
        yield app, issue_id, people


def test_the_page_lists_shows_raw_escaped_and_reactivates(world):
    app, issue_id, (ada, bob) = world
    assert _bounce(app, issue_id, ada, BounceKind.HARD).startswith("recorded hard")
    _bounce(app, issue_id, bob, BounceKind.COMPLAINT, raw="Feedback-Type: abuse")
    assert db.session.get(Subscriber, ada.id).status is SubscriberStatus.BOUNCED
    client = editor_client(app)
    listed = client.get("/editor/bounces").get_data(as_text=True)
    assert "ada@example.com" in listed and "bob@example.com" in listed
    assert (
        client.get("/editor/bounces?kind=complaint").get_data(as_text=True).count("data-bounce-id")
        == 1
    )
    assert client.get("/editor/bounces?kind=nonsense").status_code == 400
    assert client.get("/editor/bounces?before=99999999999").status_code == 400
    bounce_id = db.session.scalar(sa.text("SELECT min(id) FROM bounce"))
    shown = client.get(f"/editor/bounces/{bounce_id}").get_data(as_text=True)
    assert "&lt;script&gt;alert(" in shown and "<script>alert(" not in shown
    # The person's page and the issue page show it too, with exact counts.
    person = client.get(f"/editor/subscribers/{ada.id}").get_data(as_text=True)
    assert "user unknown" in person
    issue_page = client.get(f"/editor/issues/{issue_id}").get_data(as_text=True)
    assert "Hard bounces <strong>1</strong>" in issue_page
    assert "Complaints <strong>1</strong>" in issue_page
    assert "over the 0.3% Gmail and Yahoo allow" in issue_page  # 1 of 2 delivered
    numbers = client.get("/editor/stats").get_data(as_text=True)
    row = numbers.split('id="issue-numbers"')[1].split("</tr>")[1]
    assert "<td>1</td><td>0</td><td>1 (50.00%, over 0.3%)</td>" in row
    # Reactivate: confirmed again; the bounce stays, marked undone by this editor.
    token = client.get(f"/editor/bounces/{bounce_id}").get_data(as_text=True)
    csrf = token.split('name="csrf_token" value="')[1].split('"')[0]
    done = client.post(f"/editor/bounces/{bounce_id}/reactivate", data={"csrf_token": csrf})
    assert done.status_code == 302
    db.session.expire_all()
    assert db.session.get(Subscriber, ada.id).status is SubscriberStatus.CONFIRMED
    again = client.get(f"/editor/bounces/{bounce_id}").get_data(as_text=True)
    assert "Undone" in again and "editor@example.org" in again
    assert client.get("/editor/bounces/424242").status_code == 404


def test_the_api_lists_bounces_with_a_cursor(world):
    app, issue_id, (ada, bob) = world
    _bounce(app, issue_id, ada, BounceKind.HARD)
    _bounce(app, issue_id, bob, BounceKind.SOFT)
    client = app.test_client()
    assert client.get("/api/v1/bounces").status_code == 401
    headers = bearer(app)
    first = client.get("/api/v1/bounces?limit=1", headers=headers).get_json()
    assert [b["email"] for b in first["data"]] == ["bob@example.com"]
    assert first["data"][0]["kind"] == "soft" and first["data"][0]["issue_id"] == issue_id
    rest = client.get(f"/api/v1/bounces?cursor={first['next_cursor']}", headers=headers)
    assert [b["email"] for b in rest.get_json()["data"]] == ["ada@example.com"]
    assert rest.get_json()["next_cursor"] is None
    assert client.get("/api/v1/bounces?kind=x", headers=headers).status_code == 400


def _shots(page: Any, name: str) -> None:
    """Save the page at desktop and phone width when SCREENSHOTS names a folder."""
    folder = os.environ.get("SCREENSHOTS")
    if not folder:
        return
    for width in (1280, 390):
        page.set_viewport_size({"width": width, "height": 900})
        page.screenshot(path=f"{folder}/{name}-{width}.png", full_page=True)
        overflow = page.evaluate("document.documentElement.scrollWidth > window.innerWidth")
        assert not overflow, f"{name} scrolls sideways at {width} px"
    page.set_viewport_size({"width": 1280, "height": 900})


@pytest.mark.browser
def test_an_editor_opens_a_bounce_reads_it_and_reactivates_the_reader(live_server, page):
    app = live_server.app
    with app.app_context():
        add_editor()
        issue_id, (ada, _bob) = _sent_world(app, live_server.drain)
        _bounce(app, issue_id, ada, BounceKind.HARD)
        ada_id = ada.id
    page.goto(live_server.url + "/editor/bounces")
    page.get_by_label("Email").fill("ed@example.org")
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()
    page.get_by_role("heading", name="Bounces and complaints").wait_for()
    row = page.locator("#bounces tbody tr")
    assert row.count() == 1 and "ada@example.com" in row.inner_text()
    _shots(page, "bounces")
    row.get_by_role("link").first.click()
    page.get_by_role("heading", name="Hard bounce").wait_for()
    _shots(page, "bounce")
    assert "<script>alert('x')</script>" in page.locator("#raw").inner_text()
    page.get_by_role("button", name="Reactivate ada@example.com").click()
    page.get_by_text("Reactivated: the address is confirmed again").wait_for()
    for name, path in (
        ("bounce-issue", f"/editor/issues/{issue_id}"),
        ("bounce-stats", "/editor/stats"),
        ("bounce-person", f"/editor/subscribers/{ada_id}"),
    ):
        page.goto(live_server.url + path)
        _shots(page, name)
    with app.app_context():
        assert db.session.get(Subscriber, ada_id).status is SubscriberStatus.CONFIRMED
        assert db.session.scalar(sa.select(sa.func.count()).select_from(Delivery)) == 2
