"""The subscribers list filtered by tag, counts per tag, and acting on all a filter matches."""

from __future__ import annotations

import csv
import io

import sqlalchemy as sa

from newsletter.extensions import db
from newsletter.models import EventKind, Subscriber, SubscriberEvent, SubscriberStatus
from newsletter.subscribers import bulk_jobs
from newsletter.subscribers.tags import add_tags, tag_counts, tag_names
from tests.helpers import emails_on
from tests.helpers.editors import editor_client, post_form
from tests.helpers.readers import subscriber

S = SubscriberStatus


def _list(n_tagged: int, n_other: int) -> list[int]:
    ids = []
    for i in range(n_tagged + n_other):
        sub = Subscriber(email=f"r{i}@example.com", name=f"Reader {i}", status=S.CONFIRMED)
        db.session.add(sub)
        db.session.flush()
        if i < n_tagged:
            add_tags(db.session(), sub.id, ["group 7"], by="test")
        ids.append(sub.id)
    db.session.commit()
    return ids


def test_the_list_filters_by_tag_and_counts_per_tag(app):
    _list(3, 2)
    client = editor_client(app)
    page = client.get("/editor/subscribers").text
    assert 'data-tag="group 7"' in page and "group 7 <strong>3</strong>" in page
    shown = emails_on(client.get("/editor/subscribers?tag=GROUP+7").text)
    assert sorted(shown) == ["r0@example.com", "r1@example.com", "r2@example.com"]
    assert client.get("/editor/subscribers?tag=nope").status_code == 404
    export = client.get("/editor/subscribers/export.csv?tag=group+7").text
    rows = list(csv.DictReader(io.StringIO(export)))
    assert len(rows) == 3 and {r["tags"] for r in rows} == {"group 7"}


def test_bulk_tag_untag_and_unsubscribe_reach_everyone_that_matches_not_one_page(app):
    bulk_jobs.CHUNK, chunk = 7, bulk_jobs.CHUNK  # several chunks with a small list
    try:
        _list(60, 10)
        client = editor_client(app)
        page = "/editor/subscribers?tag=group+7"
        assert "With all 60 people that match" in client.get(page).text
        done = post_form(
            client,
            page,
            "/editor/subscribers/bulk",
            tag="group 7",
            do="tag",
            tag_name="workshop",
            all="yes",
        )
        assert done.status_code == 303
        assert "Tagged 60 people “workshop”." in client.get(done.headers["Location"]).text
        assert ("workshop", 60, 60) in tag_counts(db.session())
        post_form(
            client,
            page,
            "/editor/subscribers/bulk",
            q="r1",
            do="untag",
            tag_name="workshop",
            all="yes",
        )
        # r1, r10–r19: eleven matched the search and carried it.
        assert ("workshop", 49, 49) in tag_counts(db.session())
        gone = post_form(
            client,
            page,
            "/editor/subscribers/bulk",
            tag="group 7",
            do="unsubscribe",
            all="yes",
        )
        assert "Unsubscribed 60 people" in client.get(gone.headers["Location"]).text
        left = db.session.scalar(
            sa.select(sa.func.count()).where(Subscriber.status == S.UNSUBSCRIBED)
        )
        assert left == 60
        assert subscriber("r65@example.com").status is S.CONFIRMED
        detail = db.session.scalar(
            sa.select(SubscriberEvent.detail).where(SubscriberEvent.kind == EventKind.UNSUBSCRIBED)
        )
        assert detail == "by editor editor@example.org"
    finally:
        bulk_jobs.CHUNK = chunk


def test_bulk_erase_needs_the_count_typed_and_a_wrong_count_erases_nobody(app):
    ids = _list(12, 3)
    client = editor_client(app)
    page = "/editor/subscribers?tag=group+7"
    wrong = post_form(
        client,
        page,
        "/editor/subscribers/bulk",
        tag="group 7",
        do="erase",
        confirm_count="15",
        all="yes",
    )
    assert "Type the number of people to erase, 12" in client.get(wrong.headers["Location"]).text
    assert db.session.scalar(sa.select(sa.func.count()).select_from(Subscriber)) == 15
    unticked = post_form(
        client,
        page,
        "/editor/subscribers/bulk",
        tag="group 7",
        do="erase",
        confirm_count="12",
    )
    assert "all that match" in client.get(unticked.headers["Location"]).text
    done = post_form(
        client,
        page,
        "/editor/subscribers/bulk",
        tag="group 7",
        do="erase",
        confirm_count="12",
        all="yes",
    )
    assert "Erased 12 people" in client.get(done.headers["Location"]).text
    assert db.session.scalar(sa.select(sa.func.count()).select_from(Subscriber)) == 3
    assert tag_names(db.session(), ids[:1]) == {ids[0]: []}


def test_bulk_refuses_bad_input_and_changes_nothing(app):
    _list(3, 0)
    client = editor_client(app)
    page = "/editor/subscribers?tag=group+7"
    for fields, words in (
        ({"do": "tag", "tag_name": "<b>x</b>"}, "no HTML"),
        ({"do": "tag", "tag_name": "x" * 10_000}, "longer than 50"),
        ({"do": "tag", "tag_name": "a,b"}, "comma"),
        ({"do": "tag", "tag_name": "   "}, "only spaces"),
        ({"do": "untag", "tag_name": "never made"}, "No tag named never made"),
        ({"do": "explode"}, "Choose what to do"),
    ):
        answer = post_form(
            client, page, "/editor/subscribers/bulk", tag="group 7", all="yes", **fields
        )
        assert words in client.get(answer.headers["Location"]).text, fields
    assert tag_counts(db.session()) == [("group 7", 3, 3)]
    export = post_form(
        client, page, "/editor/subscribers/bulk", tag="group 7", do="export", all="yes"
    )
    assert export.headers["Location"].endswith("/editor/subscribers/export.csv?tag=group+7")


def test_a_search_is_counted_only_when_asked(app):
    _list(3, 12)
    client = editor_client(app)
    page = client.get("/editor/subscribers?q=r1").text
    assert "Count everyone this search matches" in page and "With all" not in page
    counted = client.get("/editor/subscribers?q=r1&count=1").text
    assert "With all 6 people that match" in counted  # r1, r10–r14
