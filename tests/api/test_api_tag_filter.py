"""GET /api/v1/subscribers?tag=NAME: the people who carry a tag, pages and all."""

from __future__ import annotations

from newsletter.extensions import db
from newsletter.models import Subscriber, SubscriberStatus
from newsletter.subscribers.tags import add_tags
from tests.helpers.editors import bearer

S = SubscriberStatus


def _people() -> None:
    for i in range(6):
        status = S.CONFIRMED if i % 2 else S.PENDING
        sub = Subscriber(email=f"t{i}@example.com", name=f"Name {i}", status=status)
        db.session.add(sub)
        db.session.flush()
        if i < 4:
            add_tags(db.session(), sub.id, ["Group 7"], by="test")
    db.session.commit()


def _emails(client, auth, **query) -> list[str]:
    seen, cursor = [], None
    while True:
        page = client.get(
            "/api/v1/subscribers",
            headers=auth,
            query_string={**query, "limit": 2, **({"cursor": cursor} if cursor else {})},
        )
        assert page.status_code == 200, page.data[:200]
        body = page.get_json()
        seen += [s["email"] for s in body["data"]]
        assert all("Group 7" in s["tags"] for s in body["data"]) or not query.get("tag")
        cursor = body["next_cursor"]
        if cursor is None:
            return seen


def test_the_list_filters_by_tag_in_any_case_with_status_and_pages(app):
    _people()
    client, auth = app.test_client(), bearer(app)
    assert _emails(client, auth, tag="group 7") == [f"t{i}@example.com" for i in (3, 2, 1, 0)]
    assert _emails(client, auth, tag="GROUP 7", status="confirmed") == [
        "t3@example.com",
        "t1@example.com",
    ]
    assert len(_emails(client, auth, tag="")) == 6  # empty: no filter, like status


def test_an_unknown_or_bad_tag_is_a_clear_422(app):
    _people()
    client, auth = app.test_client(), bearer(app)
    for tag, code in (
        ("group 9", "unknown_tag"),
        ("<b>x</b>", "invalid_parameter"),
        ("x" * 10_000, "invalid_parameter"),
    ):
        answer = client.get("/api/v1/subscribers", headers=auth, query_string={"tag": tag})
        assert answer.status_code == 422 and answer.mimetype == "application/json"
        error = answer.get_json()["error"]
        assert error["code"] == code and error["field"] == "tag", error
        assert "tag" in error["message"].lower()
    unknown = client.get("/api/v1/subscribers?tag=group+9", headers=auth).get_json()["error"]
    assert unknown["message"] == "No tag named group 9: check the spelling or tag someone first."


def test_the_document_describes_the_tag_filter(app):
    doc = app.test_client().get("/api/v1/openapi.json").get_json()
    listing = doc["paths"]["/subscribers"]["get"]
    assert "tag" in [p["name"] for p in listing["parameters"]]
    assert "422" in listing["responses"]
