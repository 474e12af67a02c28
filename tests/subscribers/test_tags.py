"""Tags and people added by hand: the rules for a tag, the editor's pages, the API and the CLI."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from newsletter.errors import Invalid
from newsletter.extensions import db
from newsletter.models import EventKind, SubscriberEvent, SubscriberStatus, SubscriberTag, Tag
from newsletter.subscribers.tags import (
    MAX_TAGS_PER_PERSON,
    add_tags,
    clean_tag,
    parse_tags,
    set_tags,
    tag_counts,
    tag_names,
)
from tests.helpers.editors import bearer, editor_client, post_form
from tests.helpers.readers import subscriber

S = SubscriberStatus


def _history(sub_id: int) -> list[tuple[str, str]]:
    rows = db.session.execute(
        sa.select(SubscriberEvent.kind, SubscriberEvent.detail)
        .where(SubscriberEvent.subscriber_id == sub_id)
        .order_by(SubscriberEvent.id)
    )
    return [(k.value, d) for k, d in rows]


@pytest.mark.parametrize(
    ("raw", "words"),
    [
        ("x" * 10_000, "longer than 50"),
        ("<b>vip</b>", "no HTML"),
        ("a,b", "comma"),
        ("   ", "empty or only spaces"),
        ("line\x07bell", "control"),
    ],
)
def test_a_bad_tag_is_refused_with_a_clear_message(raw, words):
    with pytest.raises(Invalid) as caught:
        clean_tag(raw)
    assert words in caught.value.message


def test_tag_names_are_trimmed_and_one_whatever_their_case(app, make_subscriber):
    assert clean_tag("  group   7 ") == "group 7"
    assert parse_tags("Group 7, group 7 ,, vip,") == ["Group 7", "vip"]
    ann, bob = make_subscriber("ann@example.com"), make_subscriber("bob@example.com")
    add_tags(db.session(), ann.id, ["Group 7"], by="test")
    add_tags(db.session(), bob.id, ["GROUP 7", "vip"], by="test")
    db.session.commit()
    assert db.session.scalar(sa.select(sa.func.count()).select_from(Tag)) == 2
    assert tag_names(db.session(), [bob.id])[bob.id] == ["Group 7", "vip"]
    assert tag_counts(db.session()) == [("Group 7", 2, 2), ("vip", 1, 1)]


def test_ten_thousand_tags_on_one_person_are_refused_and_nothing_is_added(app, make_subscriber):
    with pytest.raises(Invalid, match="at most 100"):
        parse_tags(", ".join(f"t{i}" for i in range(10_000)))
    with pytest.raises(Invalid, match="at most 100"):
        parse_tags([f"t{i}" for i in range(10_000)])
    ann = make_subscriber("ann@example.com")
    add_tags(db.session(), ann.id, [f"t{i}" for i in range(MAX_TAGS_PER_PERSON)], by="test")
    db.session.commit()
    with pytest.raises(Invalid, match="at most 100"):
        add_tags(db.session(), ann.id, ["one more"], by="test")
    db.session.rollback()
    assert len(tag_names(db.session(), [ann.id])[ann.id]) == MAX_TAGS_PER_PERSON


def test_setting_tags_records_the_change_and_erasing_the_person_drops_their_links(
    app, make_subscriber
):
    ann = make_subscriber("ann@example.com")
    set_tags(db.session(), ann.id, ["a", "b"], by="test")
    db.session.commit()
    assert set_tags(db.session(), ann.id, ["b", "c"], by="test")
    assert not set_tags(db.session(), ann.id, ["C", "B"], by="test")
    db.session.commit()
    assert tag_names(db.session(), [ann.id])[ann.id] == ["b", "c"]
    assert ("edited", "tags +c -a (test)") in _history(ann.id)
    client = editor_client(app)
    page = f"/editor/subscribers/{ann.id}/erase"
    post_form(client, page, page, confirm_email="ann@example.com")
    assert db.session.scalar(sa.select(sa.func.count()).select_from(SubscriberTag)) == 0


# --- the editor's add-by-hand form and a person's page ---------------------------------------


def test_adding_a_person_by_hand_mails_the_confirmation(app, run_jobs, inbox):
    client = editor_client(app)
    answer = post_form(
        client,
        "/editor/subscribers/new",
        "/editor/subscribers/new",
        email="Ann@Example.com",
        name="Ann",
        tags="group 7, workshop",
        mode="confirm",
    )
    assert answer.status_code == 302
    page = client.get(answer.headers["Location"]).text
    assert "a confirmation mail is on its way" in page
    assert "group 7" in page and "workshop" in page
    sub = subscriber("ann@example.com")
    assert sub is not None and sub.status is S.PENDING and sub.source == "editor"
    assert run_jobs() == 1
    assert inbox.wait_for(1)[0]["To"] == "ann@example.com"


def test_marking_a_person_confirmed_needs_a_reason_that_goes_into_their_history(
    app, run_jobs, inbox
):
    client = editor_client(app)
    page = "/editor/subscribers/new"
    refused = post_form(client, page, page, email="bob@example.com", mode="confirmed", reason=" ")
    assert refused.status_code == 400
    assert "Say why this person counts as confirmed" in refused.text
    assert subscriber("bob@example.com") is None
    done = post_form(
        client, page, page, email="bob@example.com", mode="confirmed", reason="paper form, group 7"
    )
    assert done.status_code == 302
    sub = subscriber("bob@example.com")
    assert sub is not None and sub.status is S.CONFIRMED
    assert ("confirmed", "by editor editor@example.org: paper form, group 7") in _history(sub.id)
    assert run_jobs() == 0  # no mail for someone who opted in elsewhere


@pytest.mark.parametrize(
    ("fields", "words"),
    [
        ({"email": "not an address", "mode": "confirm"}, "@"),
        ({"email": "c@example.com", "mode": "confirm", "tags": "x" * 10_000}, "at most 100"),
        ({"email": "c@example.com", "mode": "confirm", "tags": "<script>"}, "no HTML"),
        ({"email": "c@example.com", "mode": "confirm", "tags": "a" * 51}, "longer than 50"),
        ({"email": "c@example.com"}, "Choose whether"),
        ({"email": "c@example.com", "mode": "confirm", "name": "a\nb"}, "line breaks"),
    ],
)
def test_the_add_form_refuses_bad_input_and_adds_nobody(app, fields, words):
    client = editor_client(app)
    answer = post_form(client, "/editor/subscribers/new", "/editor/subscribers/new", **fields)
    assert answer.status_code == 400
    assert words in answer.text
    assert subscriber("c@example.com") is None
    assert db.session.scalar(sa.select(sa.func.count()).select_from(Tag)) == 0


def test_adding_someone_already_on_the_list_is_refused(app, make_subscriber):
    make_subscriber("ann@example.com", "unsubscribed")
    client = editor_client(app)
    page = "/editor/subscribers/new"
    answer = post_form(client, page, page, email="ann@example.com", mode="confirmed", reason="x")
    assert answer.status_code == 409 and "already on the list (unsubscribed)" in answer.text
    assert subscriber("ann@example.com").status is S.UNSUBSCRIBED


def test_a_persons_page_edits_the_name_and_tags(app, make_subscriber):
    ann = make_subscriber("ann@example.com", name="Ann")
    client = editor_client(app)
    page = f"/editor/subscribers/{ann.id}"
    post_form(client, page, f"{page}/edit", name="Ann Lee", tags="group 8, vip")
    shown = client.get(page).text
    assert "Ann Lee" in shown and "group 8" in shown and "vip" in shown
    bad = post_form(client, page, f"{page}/edit", name="Ann", tags="a,<b>")
    assert bad.status_code == 302
    assert "no HTML" in client.get(page).text
    assert subscriber("ann@example.com").name == "Ann Lee"  # nothing half done


def test_status_changes_keep_the_rules(app, make_subscriber):
    pending = make_subscriber("p@example.com", "pending")
    gone = make_subscriber("u@example.com", "unsubscribed")
    client = editor_client(app)
    page = f"/editor/subscribers/{pending.id}"
    post_form(client, page, f"{page}/status", status="confirmed", reason="")
    assert "Say why" in client.get(page).text
    assert subscriber("p@example.com").status is S.PENDING
    post_form(client, page, f"{page}/status", status="confirmed", reason="phoned us")
    assert subscriber("p@example.com").status is S.CONFIRMED
    post_form(client, page, f"{page}/status", status="unsubscribed")
    sub = subscriber("p@example.com")
    assert sub.status is S.UNSUBSCRIBED
    assert ("unsubscribed", "by editor editor@example.org") in _history(sub.id)
    page = f"/editor/subscribers/{gone.id}"
    post_form(client, page, f"{page}/status", status="confirmed", reason="they said so")
    assert "only their own sign-up" in client.get(page).text
    assert subscriber("u@example.com").status is S.UNSUBSCRIBED
    post_form(client, page, f"{page}/status", status="pending")
    assert "Only a sign-up makes someone pending" in client.get(page).text


def test_resending_the_confirmation_keeps_the_forms_limits(app, make_subscriber, run_jobs, inbox):
    ann = make_subscriber("ann@example.com", "pending")
    client = editor_client(app)
    page = f"/editor/subscribers/{ann.id}"
    post_form(client, page, f"{page}/resend")
    assert "on its way again" in client.get(page).text
    assert run_jobs() == 1 and inbox.wait_for(1)[0]["To"] == "ann@example.com"
    post_form(client, page, f"{page}/resend")
    assert "try again later" in client.get(page).text
    assert run_jobs() == 0
    kinds = [k for k, _ in _history(ann.id)]
    assert kinds.count(EventKind.CONFIRMATION_SENT.value) == 1


# --- the API and the CLI ----------------------------------------------------------------------


def test_the_api_adds_people_with_tags_and_changes_them(app, run_jobs, inbox):
    client, auth = app.test_client(), bearer(app)
    made = client.post(
        "/api/v1/subscribers",
        json={"email": "ann@example.com", "name": "Ann", "tags": ["group 7", "Group 7", "vip"]},
        headers=auth,
    )
    assert made.status_code == 201, made.text
    body = made.get_json()
    assert body["status"] == "pending" and body["tags"] == ["group 7", "vip"]
    assert run_jobs() == 1 and inbox.wait_for(1)
    sid = body["id"]
    changed = client.patch(
        f"/api/v1/subscribers/{sid}",
        json={"tags": ["group 8"], "status": "confirmed", "reason": "confirmed by phone"},
        headers=auth,
    )
    assert changed.status_code == 200, changed.text
    assert changed.get_json()["tags"] == ["group 8"]
    assert changed.get_json()["status"] == "confirmed"
    listed = client.get("/api/v1/subscribers", headers=auth).get_json()
    assert listed["data"][0]["tags"] == ["group 8"]
    no_reason = client.patch(
        f"/api/v1/subscribers/{sid}", json={"status": "confirmed"}, headers=auth
    )
    assert no_reason.status_code == 200  # already confirmed: nothing to change
    for bad in ({"tags": "a,b"}, {"tags": ["a,b"]}, {"tags": ["<i>"]}, {"tags": ["  "]}):
        answer = client.patch(f"/api/v1/subscribers/{sid}", json=bad, headers=auth)
        assert answer.status_code == 422, bad
        assert answer.get_json()["error"]["field"] == "tags"
    again = client.post("/api/v1/subscribers", json={"email": "ann@example.com"}, headers=auth)
    assert again.status_code == 409
    unconfirmed = client.post(
        "/api/v1/subscribers", json={"email": "b@example.com", "status": "confirmed"}, headers=auth
    )
    assert unconfirmed.status_code == 422 and unconfirmed.get_json()["error"]["field"] == "reason"
    assert subscriber("b@example.com") is None


def test_the_cli_adds_and_tags_people(app, run_jobs):
    runner = app.test_cli_runner()
    added = runner.invoke(
        args=["subscribers", "add", "ann@example.com", "--tag", "group 7", "--confirmed", "paper"]
    )
    assert added.exit_code == 0, added.output
    assert "confirmed" in added.stdout
    assert run_jobs() == 0
    tagged = runner.invoke(args=["subscribers", "tag", "ann@example.com", "vip", "Group 8"])
    assert tagged.stdout.strip() == "ann@example.com: group 7, Group 8, vip"
    removed = runner.invoke(args=["subscribers", "tag", "ann@example.com", "--remove", "VIP"])
    assert removed.stdout.strip() == "ann@example.com: group 7, Group 8"
    bad = runner.invoke(args=["subscribers", "tag", "ann@example.com", "a,b"])
    assert bad.exit_code == 1 and "comma" in bad.stderr
    pending = runner.invoke(args=["subscribers", "add", "bob@example.com"])
    assert pending.exit_code == 0 and "confirmation mail queued" in pending.stdout
    assert run_jobs() == 1
