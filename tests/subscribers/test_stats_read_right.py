"""The stats page reads right: issues by subject, round ticks, the confirmation rate over the
sign-ups asked to confirm, who left after each issue and how, and each tag's growth.

Every figure is made by the code paths a reader or an editor takes, and read off the page.
"""

from __future__ import annotations

import re
from datetime import timedelta

import sqlalchemy as sa

from newsletter.extensions import db
from newsletter.issues.actions import create_issue
from newsletter.models import Delivery, DeliveryStatus, Issue, IssueStatus, Subscriber, utcnow
from newsletter.services import tokens
from newsletter.subscribers import state
from newsletter.subscribers.editing import add_person, change_status
from newsletter.subscribers.imports import import_csv
from newsletter.subscribers.signup import subscribe
from newsletter.subscribers.tags import add_tags
from newsletter.web.charts import bar_chart, line_chart, nice_ticks
from tests.helpers.editors import editor_client, post_form
from tests.subscribers.test_stats import add_stats


def _id(email: str) -> int:
    found = db.session.scalar(sa.select(Subscriber.id).where(Subscriber.email == email))
    assert found is not None
    return found


def _sign_up_and_confirm(email: str) -> int:
    sid = subscribe(db.session, email).subscriber_id
    db.session.commit()
    sub = db.session.get(Subscriber, sid)
    assert sub is not None
    assert state.confirm(db.session, sid, sub.version).value == "confirmed"
    db.session.commit()
    return sid


def _row(html: str, table: str, first_cell: str) -> list[str]:
    part = html[html.index(f'id="{table}"') :]
    part = part[: part.index("</table>")]
    for row in re.findall(r"<tr[^>]*>(.*?)</tr>", part, re.S):
        cells = [re.sub(r"<[^>]+>", "", c).strip() for c in re.findall(r"<td[^>]*>(.*?)</td>", row)]
        if cells and cells[0] == first_cell:
            return cells[1:]
    raise AssertionError(f"no row {first_cell!r} in {table}")


def test_ticks_are_round_steps_never_thirds():
    assert nice_ticks(10) == [0, 2, 4, 6, 8, 10]
    assert nice_ticks(3) == [0, 1, 2, 3]
    assert nice_ticks(13) == [0, 5, 10, 15]
    assert nice_ticks(1234) == [0, 500, 1000, 1500]
    assert nice_ticks(0) == [0, 1]
    for top in (1, 2, 3, 7, 10, 33, 99, 101, 999, 12345):
        ticks = nice_ticks(top)
        step = ticks[1]
        assert ticks[-1] >= top and len(ticks) <= 6
        assert str(int(step)).rstrip("0") in ("1", "2", "5"), (top, step)
    labels = re.findall(
        r'class="tick"[^>]*>([^<]+)<', str(bar_chart("t", ["a"], {"s": [10]}, ["#000"]))
    )
    assert labels == ["0", "2", "4", "6", "8", "10"]
    labels = re.findall(r'class="tick"[^>]*>([^<]+)<', str(line_chart("r", ["a"], [0.5])))
    assert labels == ["0%", "20%", "40%", "60%", "80%", "100%"]


def test_the_page_reads_right(app, client):
    now = utcnow()
    # Sign-ups asked to confirm: four by the form, three of them clicked the link.
    readers = [_sign_up_and_confirm(f"r{i}@example.org") for i in range(3)]
    subscribe(db.session, "waits@example.org")
    db.session.commit()
    # Brought in by imports: confirmed by the editor's word, or asked by mail and clicked.
    report = import_csv(
        db.session, "email\nimp1@example.org\nimp2@example.org\n", confirmed=True, tags=["group 7"]
    )
    assert report.confirmed == 2
    import_csv(db.session, "email\nimp3@example.org\n", confirmed=False)
    imp3 = db.session.get(Subscriber, _id("imp3@example.org"))
    assert imp3 is not None
    state.confirm(db.session, imp3.id, imp3.version)
    # Added by hand and confirmed with a reason: nobody was asked either.
    add_person(db.session, "hand@example.org", "", ["group 7"], reason="paper form", by="ed")
    db.session.commit()

    # Two issues; after the second, readers leave by every door.
    first = Issue(
        slug="a",
        subject="Keyboard shortcuts",
        body_md="x",
        status=IssueStatus.SENT,
        queued_at=now - timedelta(days=5),
        sent_at=now - timedelta(days=5),
    )
    second = Issue(
        slug="b",
        subject="Regular expressions explained slowly",
        body_md="x",
        status=IssueStatus.SENT,
        queued_at=now,
        sent_at=now,
    )
    db.session.add_all([first, second])
    db.session.flush()
    db.session.add(
        Delivery(issue_id=second.id, subscriber_id=readers[0], status=DeliveryStatus.SENT)
    )
    add_tags(db.session, readers[0], ["group 7"], by="ed")
    add_tags(db.session, readers[1], ["group 8"], by="ed")
    db.session.commit()
    unsubscribe = tokens(app).unsubscribe_token
    assert (
        client.post(
            f"/unsubscribe/{unsubscribe(readers[0])}", data={"List-Unsubscribe": "One-Click"}
        ).status_code
        == 200
    )
    assert (
        client.post(
            f"/unsubscribe/{unsubscribe(readers[1])}", data={"reason": "too_many"}
        ).status_code
        == 200
    )
    state.unsubscribe(db.session, readers[2], detail="complaint")
    state.bounce(db.session, _id("imp1@example.org"), "550 no such user")
    change_status(
        db.session, _id("imp2@example.org"), "unsubscribed", reason=None, by="ed@example.org"
    )
    db.session.commit()

    html = editor_client(app).get("/editor/stats").text
    # Four asked by mail, three clicked: 75%, whatever the imports and the hand-added did.
    assert re.search(r'id="overall-rate"><strong>75%</strong>', html)
    assert re.search(r"<title>[^<]*: 75%</title></circle>", html)
    # The per-issue chart names issues by subject (cut to the room it has), not by number.
    issues = html[html.index('id="issues"') :]
    chart = issues[: issues.index("</svg>")]
    shown = re.findall(r'class="label"[^>]*>([^<]+)<', chart)
    assert shown[0] == "Keyboard shortcuts" and shown[1].startswith("Regular expressions")
    assert f"#{first.id}" not in shown
    ticks = re.findall(r'class="tick"[^>]*>([^<]+)<', html)
    assert ticks and all(re.fullmatch(r"[\d,]+%?", t) for t in ticks)
    # Who left after the second issue, by door; nobody after the first.
    assert _row(html, "left-after", "Keyboard shortcuts") == ["0"] * 6
    assert _row(html, "left-after", "Regular expressions explained slowly") == [
        "1",
        "1",
        "1",
        "1",
        "1",
        "0",
    ]  # one-click, page, complaint, bounce, editor, import
    # Per tag: readers now, joined and left over the weeks shown.
    # group 7: imp1, imp2, hand and r0 joined; r0, imp1 and imp2 left; hand is still there.
    assert _row(html, "growth", "group 7") == ["1", "4", "3"]
    assert _row(html, "growth", "group 8") == ["0", "1", "1"]


def test_old_weeks_without_the_new_counts_keep_the_plain_rate(app):
    add_stats(utcnow().date(), subscribed=10, confirmed=4)
    db.session.commit()
    html = editor_client(app).get("/editor/stats").text
    assert re.search(r'id="overall-rate"><strong>40%</strong>', html)


def test_the_issue_page_says_who_left_since_and_how(app, make_subscriber, run_jobs, inbox):
    people = [make_subscriber(f"left{n}@example.com") for n in range(6)]
    client = editor_client(app)
    issue = create_issue("Tip", "Body")
    page = f"/editor/issues/{issue.id}"
    post_form(client, page, f"{page}/send")
    run_jobs()
    inbox.wait_for(6)
    unsubscribe = tokens(app).unsubscribe_token
    reader = app.test_client()
    one_click = {"List-Unsubscribe": "One-Click"}
    assert (
        reader.post(f"/unsubscribe/{unsubscribe(people[0].id)}", data=one_click).status_code == 200
    )
    assert reader.post(f"/unsubscribe/{unsubscribe(people[1].id)}").status_code == 200
    assert reader.post(f"/unsubscribe/{unsubscribe(people[2].id)}").status_code == 200
    state.unsubscribe(db.session, people[3].id, detail="complaint")
    state.bounce(db.session, people[4].id, "550 gone")
    db.session.commit()
    shown = client.get(page).text
    assert (
        "Left since: 1 by the one-click button, 2 on the unsubscribe page, 1 by a complaint, "
        "1 by a bounce." in shown
    )
    summary = client.get(f"{page}/progress.json").get_json()["summary"]
    assert summary["left"].startswith("Left since: 1 by the one-click button")
