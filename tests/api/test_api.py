"""The JSON API: bearer tokens, every endpoint, JSON errors, and the same sign-up protections."""

from __future__ import annotations

import hashlib
import re

import pytest
import sqlalchemy as sa

from newsletter.api.serialise import ISSUE_FIELDS
from newsletter.extensions import db
from newsletter.models import ApiToken, Issue, IssueStatus, Subscriber, SubscriberStatus
from tests.helpers import csrf_from
from tests.helpers.editors import bearer, editor_client, make_editor


def error_of(response) -> dict:
    assert response.mimetype == "application/json", response.data[:200]
    body = response.get_json()
    assert set(body["error"]) >= {"code", "message"}
    return body["error"]


def test_editor_creates_a_token_that_is_shown_once_and_stored_hashed(app):
    client = editor_client(app)
    page = client.get("/editor/tokens").text
    made = client.post("/editor/tokens", data={"csrf_token": csrf_from(page), "name": "widget"})
    secret = re.search(r'<code id="token-value"[^>]*>([^<]+)</code>', made.text).group(1)
    row = db.session.scalar(sa.select(ApiToken))
    assert row.name == "widget" and row.token_hash == hashlib.sha256(secret.encode()).hexdigest()
    assert secret not in client.get("/editor/tokens").text  # shown once only

    api = app.test_client()
    auth = {"Authorization": f"Bearer {secret}"}
    assert api.get("/api/v1/subscribers", headers=auth).status_code == 200
    db.session.expire_all()
    assert db.session.scalar(sa.select(ApiToken)).last_used_at is not None

    page = client.get("/editor/tokens").text
    client.post(f"/editor/tokens/{row.id}/revoke", data={"csrf_token": csrf_from(page)})
    revoked = api.get("/api/v1/subscribers", headers=auth)
    assert revoked.status_code == 401 and error_of(revoked)["code"] == "invalid_token"


@pytest.mark.parametrize(
    "header", [None, "Bearer", "Bearer nope", "Basic dXNlcjpwYXNz", "Bearer totw_" + "x" * 43]
)
def test_requests_without_a_valid_token_get_401_json(app, header):
    headers = {"Authorization": header} if header else {}
    for method, path in [
        ("get", "/api/v1/subscribers"),
        ("get", "/api/v1/subscribers/1"),
        ("post", "/api/v1/issues"),
        ("get", "/api/v1/issues"),
        ("get", "/api/v1/issues/1/status"),
    ]:
        response = getattr(app.test_client(), method)(path, headers=headers)
        assert response.status_code == 401
        assert response.headers["WWW-Authenticate"].startswith("Bearer")
        error_of(response)


def test_subscribe_is_double_opt_in_and_answers_the_same_for_everyone(app, inbox, run_jobs):
    client = app.test_client()
    first = client.post("/api/v1/subscribe", json={"email": "New@Example.com", "name": "Nia"})
    assert first.status_code == 202
    sub = db.session.scalar(sa.select(Subscriber))
    assert sub.email == "new@example.com" and sub.status is SubscriberStatus.PENDING
    assert sub.source == "api"
    run_jobs()
    assert len(inbox.to("new@example.com")) == 1  # a confirmation, not a subscription
    # Pending again, and confirmed: the same answer, and no second mail within the cooldown.
    again = client.post("/api/v1/subscribe", json={"email": "new@example.com"})
    sub.status = SubscriberStatus.CONFIRMED
    db.session.commit()
    known = client.post("/api/v1/subscribe", json={"email": "new@example.com"})
    assert first.get_json() == again.get_json() == known.get_json()
    assert again.status_code == known.status_code == 202
    run_jobs()
    assert len(inbox.to("new@example.com")) == 1


def test_subscribe_shares_the_per_ip_limit_with_the_form(make_app):
    app = make_app(SUBSCRIBE_RATE_LIMIT="2/600")
    with app.app_context():
        client = app.test_client()
        codes = [
            client.post("/api/v1/subscribe", json={"email": f"r{i}@example.com"}).status_code
            for i in range(3)
        ]
        assert codes == [202, 202, 429]
        limited = client.post("/api/v1/subscribe", json={"email": "x@example.com"})
        assert error_of(limited)["code"] == "rate_limited" and "Retry-After" in limited.headers


@pytest.mark.parametrize(
    "kwargs, status, code",
    [
        (
            {"data": "email=a@example.com", "content_type": "application/x-www-form-urlencoded"},
            415,
            "unsupported_media_type",
        ),
        ({"data": "{not json", "content_type": "application/json"}, 400, "bad_json"),
        ({"data": b"\xff\xfe", "content_type": "application/json"}, 400, "bad_json"),
        ({"json": ["a@example.com"]}, 400, "bad_json"),
        ({"json": {}}, 422, "missing_field"),
        ({"json": {"email": "not an address"}}, 422, "invalid_email"),
        ({"json": {"email": 12}}, 422, "invalid_email"),
        ({"json": {"email": "a@example.com", "name": "Eve\r\nBcc: x@y.z"}}, 422, "invalid_name"),
        ({"json": {"email": "a@example.com", "name": "n" * 10_000}}, 422, "invalid_name"),
        ({"json": {"email": "a@example.com", "admin": True}}, 422, "unknown_field"),
        ({"json": {"email": "a@" + "x" * 300 + ".com"}}, 422, "invalid_email"),
    ],
)
def test_bad_sign_ups_get_a_json_error_and_change_nothing(app, kwargs, status, code):
    response = app.test_client().post("/api/v1/subscribe", **kwargs)
    assert response.status_code == status
    assert error_of(response)["code"] == code
    assert db.session.scalar(sa.select(sa.func.count()).select_from(Subscriber)) == 0


def test_list_get_update_and_erase_subscribers(app, make_subscriber):
    for i in range(7):
        make_subscriber(f"s{i}@example.com", "confirmed" if i % 2 else "pending", f"Name {i}")
    client, auth = app.test_client(), bearer(app)
    seen, cursor = [], None
    while True:
        page = client.get(
            "/api/v1/subscribers",
            headers=auth,
            query_string={"limit": 3, **({"cursor": cursor} if cursor else {})},
        )
        body = page.get_json()
        seen += [s["email"] for s in body["data"]]
        cursor = body["next_cursor"]
        if cursor is None:
            break
    assert seen == [f"s{i}@example.com" for i in reversed(range(7))]
    confirmed = client.get("/api/v1/subscribers?status=confirmed&q=NAME", headers=auth).get_json()
    assert [s["email"] for s in confirmed["data"]] == [
        "s5@example.com",
        "s3@example.com",
        "s1@example.com",
    ]

    sid = db.session.scalar(sa.select(Subscriber.id).where(Subscriber.email == "s1@example.com"))
    one = client.get(f"/api/v1/subscribers/{sid}", headers=auth).get_json()
    assert one["email"] == "s1@example.com" and one["status"] == "confirmed"

    renamed = client.patch(f"/api/v1/subscribers/{sid}", headers=auth, json={"name": "Ada"})
    assert renamed.get_json()["name"] == "Ada"
    out = client.patch(f"/api/v1/subscribers/{sid}", headers=auth, json={"status": "unsubscribed"})
    assert out.get_json()["status"] == "unsubscribed" and out.get_json()["unsubscribed_at"]
    # Someone who unsubscribed comes back only by their own sign-up, whatever the reason
    # given; a person cannot be made pending; an unsubscribed person cannot be marked bounced.
    refused = client.patch(
        f"/api/v1/subscribers/{sid}", headers=auth, json={"status": "confirmed", "reason": "x"}
    )
    assert refused.status_code == 409 and "own sign-up" in error_of(refused)["message"]
    pending = client.patch(f"/api/v1/subscribers/{sid}", headers=auth, json={"status": "pending"})
    assert pending.status_code == 422 and error_of(pending)["field"] == "status"
    conflict = client.patch(f"/api/v1/subscribers/{sid}", headers=auth, json={"status": "bounced"})
    assert conflict.status_code == 409
    db.session.expire_all()
    assert db.session.get(Subscriber, sid).status is SubscriberStatus.UNSUBSCRIBED

    assert client.delete(f"/api/v1/subscribers/{sid}", headers=auth).status_code == 204
    gone = client.get(f"/api/v1/subscribers/{sid}", headers=auth)
    assert gone.status_code == 404 and error_of(gone)["code"] == "not_found"
    assert client.delete(f"/api/v1/subscribers/{sid}", headers=auth).status_code == 404


def test_issue_endpoints_create_edit_preview_test_send_and_control(
    app, inbox, make_subscriber, run_jobs
):
    make_subscriber("reader@example.com", "confirmed")
    client, auth = app.test_client(), bearer(app)
    made = client.post(
        "/api/v1/issues",
        headers=auth,
        json={"subject": "Tip 1: grep -r", "body_md": "Use **grep -r**."},
    )
    assert made.status_code == 201
    iid = made.get_json()["id"]
    assert made.get_json()["status"] == "draft"

    edited = client.patch(f"/api/v1/issues/{iid}", headers=auth, json={"subject": "Tip 1: rg"})
    assert edited.get_json()["subject"] == "Tip 1: rg"
    assert edited.get_json()["body_md"] == "Use **grep -r**."
    preview = client.get(f"/api/v1/issues/{iid}/preview", headers=auth).get_json()
    assert "<strong>grep -r</strong>" in preview["html"] and "Tip 1: rg" in preview["subject"]

    test = client.post(f"/api/v1/issues/{iid}/test", headers=auth, json={"to": "me@example.com"})
    assert test.status_code == 202
    assert inbox.wait_for(1) and "[Test]" in inbox.to("me@example.com")[0]["Subject"]

    later = client.post(
        f"/api/v1/issues/{iid}/send", headers=auth, json={"at": "2099-01-04T09:00:00+01:00"}
    )
    assert later.status_code == 202 and later.get_json()["issue"]["status"] == "scheduled"
    naive = client.post(
        f"/api/v1/issues/{iid}/send", headers=auth, json={"at": "2099-01-04T09:00:00"}
    )
    assert naive.status_code == 422 and error_of(naive)["field"] == "at"

    sent = client.post(f"/api/v1/issues/{iid}/send", headers=auth)
    assert sent.status_code == 202 and sent.get_json()["issue"]["status"] == "sending"
    pause = client.post(f"/api/v1/issues/{iid}/pause", headers=auth)
    assert pause.status_code == 200 and pause.get_json()["issue"]["status"] == "paused"
    late = client.patch(f"/api/v1/issues/{iid}", headers=auth, json={"subject": "Too late"})
    assert late.status_code == 409 and error_of(late)["code"] == "conflict"
    resume = client.post(f"/api/v1/issues/{iid}/resume", headers=auth)
    assert resume.get_json()["issue"]["status"] in ("sending", "sent")
    run_jobs()
    status = client.get(f"/api/v1/issues/{iid}/status", headers=auth).get_json()
    assert status["sent"] == 1 and status["status"] == "sent"
    # Once sent, a PATCH corrects the archive page (tests/issues/test_corrections.py).
    fixed = client.patch(f"/api/v1/issues/{iid}", headers=auth, json={"subject": "Tip 1: rg!"})
    assert fixed.status_code == 200 and fixed.get_json()["subject"] == "Tip 1: rg!"
    cancel = client.post(f"/api/v1/issues/{iid}/cancel", headers=auth)
    assert cancel.status_code == 409
    assert client.get(f"/api/v1/issues/{iid}", headers=auth).get_json()["status"] == "sent"


def test_issue_errors_are_json(app):
    client, auth = app.test_client(), bearer(app)
    empty = client.post("/api/v1/issues", headers=auth, json={"subject": " ", "body_md": "x"})
    assert empty.status_code == 422 and error_of(empty)["code"] == "invalid_issue"
    assert (
        client.post("/api/v1/issues", headers=auth, json={"subject": 1, "body_md": "x"}).status_code
        == 422
    )
    for path in (
        "/api/v1/issues/42",
        "/api/v1/issues/42/preview",
        "/api/v1/issues/42/status",
        "/api/v1/issues/99999999999999999999",
    ):
        response = client.get(path, headers=auth)
        assert response.status_code == 404 and error_of(response)["code"] == "not_found"
    assert client.post("/api/v1/issues/42/pause", headers=auth).status_code == 404
    assert db.session.scalar(sa.select(sa.func.count()).select_from(Issue)) == 0


@pytest.mark.parametrize(
    "method, path",
    [
        ("get", "/api/v1/nowhere"),
        ("delete", "/api/v1/issues"),
        ("put", "/api/v1/subscribe"),
        ("get", "/api/v1/subscribers?limit=0"),
        ("get", "/api/v1/subscribers?cursor=-1"),
        ("get", "/api/v1/subscribers?status=vip"),
        ("get", "/api/v1/subscribers?limit=%00"),
        ("get", "/api/v1/subscribers?q=" + "q" * 500),
    ],
)
def test_garbage_gets_a_json_4xx_never_html_or_500(app, method, path):
    response = getattr(app.test_client(), method)(path, headers=bearer(app))
    assert 400 <= response.status_code < 500
    error_of(response)


def test_the_openapi_document_lists_exactly_the_routes(app):
    doc = app.test_client().get("/api/v1/openapi.json").get_json()
    assert doc["openapi"].startswith("3.1")
    documented = {
        (method.upper(), "/api/v1" + re.sub(r"\{(\w+)\}", r"<\1>", path))
        for path, item in doc["paths"].items()
        for method in item
        if method in ("get", "post", "patch", "delete", "put")
    }
    routed = {
        (method, re.sub(r"<(?:int|id):(\w+)>", r"<\1>", rule.rule))
        for rule in app.url_map.iter_rules()
        if rule.rule.startswith("/api/v1")
        for method in rule.methods - {"HEAD", "OPTIONS"}
    }
    assert documented == routed


def test_nul_characters_are_refused_not_stored(app):
    client, auth = app.test_client(), bearer(app)
    made = client.post("/api/v1/issues", headers=auth, json={"subject": "S", "body_md": "a\0b"})
    assert made.status_code == 422 and error_of(made)["field"] == "body_md"
    assert client.get("/api/v1/subscribers?q=a%00b", headers=auth).status_code == 400
    assert db.session.scalar(sa.select(sa.func.count()).select_from(Issue)) == 0


def test_tokens_from_the_command_line(app):
    make_editor("cli@example.org")
    runner = app.test_cli_runner()
    made = runner.invoke(args=["tokens", "create", "--editor", "cli@example.org", "--name", "ci"])
    assert made.exit_code == 0, made.output
    secret = made.stdout.strip().splitlines()[-1]
    client = app.test_client()
    auth = {"Authorization": f"Bearer {secret}"}
    assert client.get("/api/v1/subscribers", headers=auth).status_code == 200
    listed = runner.invoke(args=["tokens", "list"])
    assert "\tci\t" in listed.output and "active" in listed.output
    token_id = listed.output.split("\t")[0]
    assert runner.invoke(args=["tokens", "revoke", token_id]).exit_code == 0
    assert client.get("/api/v1/subscribers", headers=auth).status_code == 401
    again = runner.invoke(args=["tokens", "revoke", token_id])
    assert again.exit_code != 0 and "no active token" in again.output
    nobody = runner.invoke(args=["tokens", "create", "--editor", "who@example.org"])
    assert nobody.exit_code != 0 and "no editor" in nobody.output


def _issues(n: int) -> list[int]:
    made = [Issue(subject=f"Tip {i}", slug=f"tip-{i}", body_md="b") for i in range(n)]
    db.session.add_all(made)
    db.session.commit()
    return [i.id for i in made]


def test_the_issue_list_pages_newest_first_with_a_cursor_and_filters_by_status(app):
    client, auth = app.test_client(), bearer(app)
    ids = _issues(5)
    sent = db.session.get(Issue, ids[1])
    sent.status = IssueStatus.SENT
    db.session.commit()

    first = client.get("/api/v1/issues?limit=2", headers=auth)
    assert first.status_code == 200
    page = first.get_json()
    assert [i["id"] for i in page["data"]] == ids[::-1][:2]
    assert set(page["data"][0]) == {f.name for f in ISSUE_FIELDS}
    seen = [i["id"] for i in page["data"]]
    while page["next_cursor"]:
        page = client.get(f"/api/v1/issues?limit=2&cursor={page['next_cursor']}", headers=auth)
        page = page.get_json()
        seen += [i["id"] for i in page["data"]]
    assert seen == ids[::-1]

    only_sent = client.get("/api/v1/issues?status=sent", headers=auth).get_json()
    assert [(i["id"], i["status"]) for i in only_sent["data"]] == [(ids[1], "sent")]
    assert only_sent["next_cursor"] is None
    drafts = client.get("/api/v1/issues?status=draft", headers=auth).get_json()["data"]
    assert [i["id"] for i in drafts] == [i for i in ids[::-1] if i != ids[1]]


@pytest.mark.parametrize(
    "query",
    ["status=gone", "status=SENT", "status=%00", "limit=0", "limit=201", "cursor=x", "cursor=-1"],
)
def test_the_issue_list_refuses_bad_parameters_with_json_400(app, query):
    response = app.test_client().get(f"/api/v1/issues?{query}", headers=bearer(app))
    assert response.status_code == 400
    error_of(response)


def test_the_issue_list_without_a_token_is_401_not_405(app):
    response = app.test_client().get("/api/v1/issues")
    assert response.status_code == 401
    assert error_of(response)["code"] == "invalid_token" or response.headers["WWW-Authenticate"]


@pytest.mark.parametrize("path", ["/api/v1/issues", "/api/v1/subscribers", "/api/v1/bounces"])
def test_every_cursor_the_document_allows_is_answered(app, path):
    client, auth = app.test_client(), bearer(app)
    db.session.add(Issue(slug="one", subject="One", body_md="Hello"))
    db.session.add(Subscriber(email="cur@example.com", status=SubscriberStatus.CONFIRMED))
    db.session.commit()
    doc = client.get("/api/v1/openapi.json").get_json()
    params = doc["paths"][path.removeprefix("/api/v1")]["get"]["parameters"]
    cursor_schema = next(p["schema"] for p in params if p["name"] == "cursor")
    for cursor in ("0", "00", "1", "2147483647", "9999999999"):
        assert re.fullmatch(cursor_schema["pattern"].strip("^$"), cursor)
        answer = client.get(path, query_string={"cursor": cursor}, headers=auth)
        assert answer.status_code == 200, (cursor, answer.get_json())
        assert answer.get_json()["next_cursor"] is None
    assert client.get(path, query_string={"cursor": "0"}, headers=auth).get_json()["data"] == []
    for bad in ("-1", "1.0", "abc", "99999999999", "\u0661"):
        answer = client.get(path, query_string={"cursor": bad}, headers=auth)
        assert answer.status_code == 400 and error_of(answer)["field"] == "cursor", bad


def test_a_wrong_method_is_answered_405_with_the_allowed_ones(app):
    client, auth = app.test_client(), bearer(app)
    answer = client.put("/api/v1/issues", headers=auth, json={})
    assert answer.status_code == 405 and answer.is_json
    assert set(answer.headers["Allow"].replace(" ", "").split(",")) >= {"GET", "POST"}
    page = client.delete("/subscribe")
    assert page.status_code == 405 and "POST" in page.headers["Allow"]
