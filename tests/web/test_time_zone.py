"""Times in the editor's own zone: a preference on their account, every editor page's times in
it with UTC on hover, the schedule confirmed in the zone it was picked in."""

from __future__ import annotations

import re
from datetime import UTC, datetime

import pytest

from newsletter.extensions import db
from newsletter.models import Editor, ImportJob, Issue, IssueStatus
from tests.helpers.editors import add_editor, login, post_form

# 18:08 UTC on a winter day is 19:08 in Berlin (CET, UTC+1).
WINTER = datetime(2099, 1, 15, 18, 8, tzinfo=UTC)


@pytest.fixture
def editor(app, client):
    add_editor()
    assert login(client).status_code == 302
    return client


def zone_of(email="ed@example.org"):
    db.session.expire_all()
    return db.session.scalar(db.select(Editor.time_zone).where(Editor.email == email))


def pick(client, name, page="/editor/settings"):
    return post_form(client, page, "/editor/time-zone", time_zone=name, next=page)


def sent_issue_and_import():
    issue = Issue(
        slug="tip-of-the-winter", subject="Tip of the winter", body_md="x", status=IssueStatus.SENT
    )
    issue.sent_at = WINTER
    db.session.add(issue)
    db.session.add(ImportJob(filename="readers.csv", created_at=WINTER))
    db.session.commit()
    return issue.id


def test_every_editor_page_says_times_in_the_chosen_zone_with_utc_on_hover(editor):
    issue_id = sent_issue_and_import()
    response = pick(editor, "Europe/Berlin")
    assert response.status_code == 302 and response.headers["Location"] == "/editor/settings"
    assert zone_of() == "Europe/Berlin"
    assert "Times are shown in Europe/Berlin now" in editor.get("/editor/settings").get_data(
        as_text=True
    )
    shown = (
        '<time datetime="2099-01-15T18:08:00+00:00" title="2099-01-15 18:08 UTC" data-zoned>'
        "Thu 15 Jan 2099 19:08 Europe/Berlin</time>"
    )
    for page in ("/editor/", f"/editor/issues/{issue_id}", "/editor/import"):
        html = editor.get(page).get_data(as_text=True)
        assert shown in html, page
        assert "18:08 UTC</time>" not in html


def test_until_a_zone_is_chosen_times_are_in_utc_for_the_browser_to_rewrite(editor):
    sent_issue_and_import()
    html = editor.get("/editor/").get_data(as_text=True)
    assert (
        '<time datetime="2099-01-15T18:08:00+00:00" title="2099-01-15 18:08 UTC">'
        "Thu 15 Jan 2099 18:08 UTC</time>"
    ) in html
    assert 'id="zone-offer"' in html  # the browser's zone is offered to keep
    pick(editor, "Asia/Tokyo")
    assert 'id="zone-offer"' not in editor.get("/editor/").get_data(as_text=True)


def test_the_schedule_is_confirmed_in_the_zone_it_was_picked_in(editor):
    pick(editor, "Europe/Berlin")
    created = post_form(
        editor, "/editor/issues/new", "/editor/issues/new", subject="Later", body_md="x"
    )
    page = created.headers["Location"]
    html = editor.get(page).get_data(as_text=True)
    assert re.search(r'id="tz"[^>]*value="Europe/Berlin"', html)  # the account's zone first
    response = post_form(
        editor, page, f"{page}/schedule", at="2099-01-15T19:08", tz="Europe/Berlin"
    )
    assert response.status_code == 302
    html = editor.get(page).get_data(as_text=True)
    assert "Scheduled for Thu 15 Jan 2099 19:08 Europe/Berlin (2099-01-15 18:08 UTC)." in html
    assert 'title="2099-01-15 18:08 UTC" data-zoned>Thu 15 Jan 2099 19:08 Europe/Berlin' in html


@pytest.mark.parametrize(
    ("typed", "message"),
    [
        ("Europe/Atlantis", "“Europe/Atlantis” is not a time zone"),
        ("../../../etc/passwd", "is not a time zone"),
        ("Berlin", "“Berlin” is not a time zone"),
        ("x" * 5000, "is not a time zone"),
    ],
)
def test_a_zone_that_is_not_one_is_refused_and_changes_nothing(editor, typed, message):
    pick(editor, "Europe/Berlin")
    response = pick(editor, typed)
    assert response.status_code == 400
    html = response.get_data(as_text=True)
    assert message in html and 'aria-invalid="true"' in html
    assert zone_of() == "Europe/Berlin"


def test_each_editor_has_their_own_zone_and_an_empty_one_means_the_browsers(app, editor):
    add_editor("other@example.org")
    other = app.test_client()
    assert login(other, "other@example.org").status_code == 302
    pick(editor, "America/New_York")
    pick(other, "Asia/Kolkata")
    assert (zone_of(), zone_of("other@example.org")) == ("America/New_York", "Asia/Kolkata")
    # Any real zone is taken, listed or not; spaces around it are not part of it.
    pick(editor, "  Pacific/Chatham ")
    assert zone_of() == "Pacific/Chatham"
    pick(editor, "")
    assert zone_of() is None
    assert zone_of("other@example.org") == "Asia/Kolkata"
