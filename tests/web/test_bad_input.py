"""Bad input of any kind gets a clear 4xx page, changes nothing and sends no mail."""

from __future__ import annotations

import pytest
from gunicorn.http.errors import InvalidChunkSize

from newsletter.extensions import db
from newsletter.models import Subscriber, SubscriberStatus
from newsletter.services import tokens
from newsletter.subscribers.links import Tokens
from newsletter.subscribers.state import erase
from tests.helpers import csrf_from, links, text_part
from tests.helpers.editors import add_editor, bearer, editor_client, login, post_form
from tests.helpers.readers import BASE_URL, db_snapshot, link_to, subscribe, subscriber

LONG_ADDRESS = "a" * 64 + "@" + ".".join(["b" * 60] * 3) + "." + "c" * 7  # 255 characters


@pytest.fixture
def world(app, make_subscriber):
    """Two readers whose rows must survive every bad request untouched."""
    pending = make_subscriber("pending@example.com", status="pending", name="Pat")
    confirmed = make_subscriber("confirmed@example.com", status="confirmed", name="Cleo")
    return {"pending": pending.id, "confirmed": confirmed.id}


def _assert_nothing_happened(before, run_jobs, inbox):
    assert db_snapshot() == before
    assert run_jobs() == 0
    assert inbox.messages == []


def _assert_clear_page(answer, status, *words):
    assert answer.status_code == status
    assert answer.mimetype == "text/html"
    body = answer.get_data(as_text=True)
    assert "Traceback" not in body
    for word in words:
        assert word in body


@pytest.mark.parametrize(
    ("email", "name"),
    [
        ("not-an-address", ""),
        ("", "Ann"),
        (LONG_ADDRESS, ""),
        ("a@t.test\r\nBcc: v@t.test", ""),
        ("a@example.com\r\nBcc: v@example.com", ""),
        ("a@example.com\nBcc: v@example.com", ""),
        ("new@example.com", "Ann\r\nBcc: v@example.com"),
        ("new@example.com", "Ann\nBcc: v@example.com"),
        ("=?UTF-8?Q?=0A?=@example.com", ""),
        ("a@example.com=?UTF-8?Q?=0A?=Bcc: v@example.com", ""),
        ("new@example.com", "=?UTF-8?Q?=0A?=Bcc: v@example.com"),
        ("alice@t.test)<bob@t.test>", ""),
        ("alice@example.com)<bob@example.com>", ""),
        ("Bob <b@t.test>", ""),
        ("Bob <b@example.com>", ""),
        ('"bob"@example.com', ""),
        ("bob@[192.0.2.1]", ""),
        ("new@example.com", "x" * 10_000),
        ("a" * 10_000 + "@example.com", ""),
        ("new@example.com", "Ann\u2028Bcc: v@example.com"),
        ("new@example.com", "Ann\x00"),
    ],
)
def test_bad_sign_ups_get_a_400_form_page_and_change_nothing(
    world, client, run_jobs, inbox, email, name
):
    before = db_snapshot()
    answer = subscribe(client, email, name)
    assert len(LONG_ADDRESS) == 255
    _assert_clear_page(answer, 400, 'role="alert"', '<form method="post" action="/subscribe"')
    _assert_nothing_happened(before, run_jobs, inbox)


@pytest.mark.parametrize(
    "body",
    [
        b"email=\xff\xfe%40example.com&name=",
        b"email=%FF%FE%40example.com&name=",
        b"email=new%40example.com&name=Ann\xe9",
    ],
)
def test_bytes_that_are_not_utf8_are_refused(world, client, run_jobs, inbox, body):
    before = db_snapshot()
    token = csrf_from(client.get("/").get_data(as_text=True))
    answer = client.post(
        "/subscribe",
        data=body + b"&csrf_token=" + token.encode(),
        content_type="application/x-www-form-urlencoded",
    )
    _assert_clear_page(answer, 400)
    _assert_nothing_happened(before, run_jobs, inbox)


def test_a_json_body_to_the_form_is_refused(world, client, run_jobs, inbox):
    before = db_snapshot()
    token = csrf_from(client.get("/").get_data(as_text=True))
    answer = client.post("/subscribe", json={"email": "new@example.com", "csrf_token": token})
    _assert_clear_page(answer, 400, "expired")
    # Even with the CSRF token in a header, JSON is not what the form sends.
    answer = client.post(
        "/subscribe", json={"email": "new@example.com"}, headers={"X-CSRFToken": token}
    )
    _assert_clear_page(answer, 415)
    _assert_nothing_happened(before, run_jobs, inbox)


def test_a_missing_or_stale_csrf_token_is_refused(world, app, client, run_jobs, inbox):
    before = db_snapshot()
    client.get("/")
    missing = client.post("/subscribe", data={"email": "new@example.com"})
    _assert_clear_page(missing, 400, "expired")
    # A page opened before the browser lost its session (restart, cleared cookies).
    old_token = csrf_from(client.get("/").get_data(as_text=True))
    client.delete_cookie("session", domain="localhost")
    stale = client.post("/subscribe", data={"email": "new@example.com", "csrf_token": old_token})
    _assert_clear_page(stale, 400, "expired")
    tampered = csrf_from(client.get("/").get_data(as_text=True))[:-3] + "AAA"
    bad = client.post("/subscribe", data={"email": "new@example.com", "csrf_token": tampered})
    _assert_clear_page(bad, 400)
    _assert_nothing_happened(before, run_jobs, inbox)


def test_a_20_mb_post_is_refused_with_413(world, client, run_jobs, inbox):
    before = db_snapshot()
    token = csrf_from(client.get("/").get_data(as_text=True))
    huge = client.post(
        "/subscribe",
        data={"email": "new@example.com", "csrf_token": token, "name": "x" * (20 * 1024 * 1024)},
    )
    _assert_clear_page(huge, 413)
    _assert_nothing_happened(before, run_jobs, inbox)


def _tampered(token: str) -> str:
    # Change a signature character that is not the last: the last base64 character of a
    # 32-byte signature carries padding bits, so some substitutions there decode the same.
    i = len(token) - 5
    return token[:i] + ("A" if token[i] != "A" else "B") + token[i + 1 :]


def _bad_tokens(world):
    t = tokens()
    confirm = t.confirm_token(world["pending"], 1)
    unsub = t.unsubscribe_token(world["confirmed"])
    return {
        "confirm": {
            "tampered": _tampered(confirm),
            "truncated": confirm[:-6],
            "cross-purpose": unsub,
            "garbage": "not-a-token",
            "huge": "A" * 5000,
            "another key": _other_key_confirm(world["pending"]),
        },
        "unsubscribe": {
            "tampered": _tampered(unsub),
            "truncated": unsub[:-6],
            "cross-purpose": confirm,
            "garbage": "not-a-token",
            "huge": "A" * 5000,
        },
    }


def _other_key_confirm(subscriber_id):
    return Tokens("some-other-secret-key-of-enough-length-0123456789").confirm_token(
        subscriber_id, 1
    )


def test_bad_confirm_tokens_get_a_400_page_and_change_nothing(world, client, run_jobs, inbox):
    before = db_snapshot()
    for kind, token in _bad_tokens(world)["confirm"].items():
        for method in (client.get, client.post):
            answer = method(f"/confirm/{token}")
            assert answer.status_code == 400, (kind, method)
            _assert_clear_page(answer, 400, "not valid")
        answer = client.post("/confirm/resend", data={"token": token})
        _assert_clear_page(answer, 400, "not valid")
    _assert_nothing_happened(before, run_jobs, inbox)


def test_bad_unsubscribe_tokens_get_a_400_page_and_change_nothing(world, app, run_jobs, inbox):
    before = db_snapshot()
    client = app.test_client(use_cookies=False)
    for kind, token in _bad_tokens(world)["unsubscribe"].items():
        for path in (f"/unsubscribe/{token}", f"/resubscribe/{token}"):
            answer = client.post(path, data={"List-Unsubscribe": "One-Click"})
            assert answer.status_code == 400, (kind, path)
            _assert_clear_page(answer, 400, "not valid")
        _assert_clear_page(client.get(f"/unsubscribe/{token}"), 400, "not valid")
    _assert_nothing_happened(before, run_jobs, inbox)
    assert subscriber("confirmed@example.com").status.value == "confirmed"


def test_links_in_mail_use_base_url_whatever_host_the_request_named(app, run_jobs, inbox):
    evil = app.test_client()
    answer = subscribe_via(evil, "http://evil.test", "host@example.com")
    assert answer.status_code == 303
    assert run_jobs() == 1
    (msg,) = inbox.wait_for(1)
    assert "evil.test" not in msg.as_string()
    assert all(u.startswith(BASE_URL) for u in links(msg))
    assert link_to(msg, "/confirm/")
    assert BASE_URL in text_part(msg)


def subscribe_via(client, base_url, email):
    page = client.get("/", base_url=base_url).get_data(as_text=True)
    return client.post(
        "/subscribe",
        base_url=base_url,
        data={"email": email, "csrf_token": csrf_from(page)},
    )


def test_an_unknown_route_and_a_wrong_method_get_clear_pages(app, client):
    assert client.get("/no-such-page").status_code == 404
    wrong = client.get("/subscribe")
    assert wrong.status_code == 405
    assert "Traceback" not in wrong.get_data(as_text=True)


def test_erased_subscribers_links_answer_404_and_change_nothing(world, app, run_jobs, inbox):
    t = tokens()
    confirm, unsub = t.confirm_token(world["pending"], 1), t.unsubscribe_token(world["pending"])
    erase(db.session, "pending@example.com")
    db.session.commit()
    before = db_snapshot()
    client = app.test_client()
    assert client.get(f"/confirm/{confirm}").status_code == 404
    assert client.post(f"/confirm/{confirm}").status_code == 404
    assert client.get(f"/unsubscribe/{unsub}").status_code == 404
    assert client.post(f"/resubscribe/{unsub}").status_code == 404
    assert client.post(f"/unsubscribe/{unsub}").status_code == 200  # nothing left to receive mail
    _assert_nothing_happened(before, run_jobs, inbox)


def test_an_erased_newest_readers_old_links_never_reach_the_next_reader(
    app, make_subscriber, run_jobs, inbox
):
    make_subscriber("older@example.com")
    gone = make_subscriber("gone@example.com")
    t = tokens()
    unsub = t.unsubscribe_token(gone.id)
    gone_id = gone.id
    erase(db.session, "gone@example.com")
    db.session.commit()
    # SQLite would give the next row the erased newest id (max + 1) without AUTOINCREMENT.
    heir = make_subscriber("heir@example.com")
    heir_id = heir.id
    assert heir_id > gone_id
    db.session.commit()
    client = app.test_client()
    one_click = client.post(
        f"/unsubscribe/{unsub}",
        data="List-Unsubscribe=One-Click",
        content_type="application/x-www-form-urlencoded",
    )
    assert one_click.status_code == 200
    assert client.get(f"/unsubscribe/{unsub}").status_code == 404
    db.session.expire_all()
    assert db.session.get(Subscriber, heir_id).status is SubscriberStatus.CONFIRMED
    assert run_jobs() == 0 and inbox.messages == []


# --- numbers and bytes the database cannot hold (PostgreSQL refuses them with an error) -------

TOO_BIG = 2**31  # one past the id columns' range
ID_PAGES = [
    "/archive/{n}",
    "/editor/issues/{n}",
    "/editor/issues/{n}/preview",
    "/editor/issues/{n}/progress.json",
    "/editor/subscribers/{n}",
    "/editor/subscribers/{n}/erase",
    "/editor/import/{n}",
    "/editor/import/{n}.json",
]
ID_POSTS = [
    "/editor/issues/{n}",
    "/editor/issues/{n}/test",
    "/editor/issues/{n}/send",
    "/editor/issues/{n}/schedule",
    "/editor/issues/{n}/ready",
    "/editor/issues/{n}/pause",
    "/editor/issues/{n}/resume",
    "/editor/issues/{n}/cancel",
    "/editor/subscribers/{n}/erase",
    "/editor/tokens/{n}/revoke",
    "/editor/webhooks/{n}/delete",
]


@pytest.mark.parametrize("n", [TOO_BIG, 99_999_999_999, 10**30])
def test_ids_beyond_the_column_range_are_simply_not_found(world, app, run_jobs, inbox, n):
    client = editor_client(app)
    before = db_snapshot()
    for path in ID_PAGES:
        answer = client.get(path.format(n=n))
        assert answer.status_code == 404, path
        assert "Traceback" not in answer.get_data(as_text=True)
    for path in ID_POSTS:
        answer = post_form(client, "/editor/tokens", path.format(n=n))
        assert answer.status_code == 404, path
    _assert_nothing_happened(before, run_jobs, inbox)


@pytest.mark.parametrize("cursor", [str(TOO_BIG), str(TOO_BIG + 1), "9" * 18, "9" * 40, "-1"])
def test_editor_page_cursors_beyond_the_range_get_a_400_page(world, app, cursor):
    client = editor_client(app)
    for name in ("after", "before"):
        answer = client.get(f"/editor/subscribers?{name}={cursor}")
        _assert_clear_page(answer, 400, "broken")


@pytest.mark.parametrize(
    "path",
    [
        "/archive/a%00b",
        "/archive/%00",
        "/editor/subscribers?q=a%00b",
        "/editor/subscribers?status=%00",
        "/?x=%00",
        "/confirm/abc%00def",
        "/unsubscribe/abc%00def",
    ],
)
def test_nul_bytes_in_a_url_get_a_clear_4xx_page(world, app, run_jobs, inbox, path):
    before = db_snapshot()
    answer = editor_client(app).get(path)
    assert 400 <= answer.status_code < 500, answer.status_code
    assert "Traceback" not in answer.get_data(as_text=True)
    _assert_nothing_happened(before, run_jobs, inbox)


def test_a_nul_byte_in_the_login_email_gets_a_clear_4xx_page(world, app, run_jobs, inbox):
    add_editor("ed@example.org")
    before = db_snapshot()
    client = app.test_client()
    answer = login(client, email="ed\x00@example.org")
    _assert_clear_page(answer, 400)
    answer = login(client, email="ed@example.org", password="x\x00y")
    assert 400 <= answer.status_code < 500
    assert db_snapshot() == before
    assert run_jobs() == 0


class BrokenChunks:
    """A request body whose chunked framing is broken, raised as gunicorn's parser does."""

    def read(self, *_args):
        raise InvalidChunkSize(b"zz\r\n")

    readline = read


class CutShort:
    """A chunked body that ends mid-chunk, as werkzeug's dev server reports it."""

    def read(self, *_args):
        raise OSError("Invalid chunk header")

    readline = read


@pytest.mark.parametrize("stream", [BrokenChunks, CutShort])
def test_a_bad_chunked_body_on_subscribe_gets_a_400_page(world, app, run_jobs, inbox, stream):
    before = db_snapshot()
    client = app.test_client()
    answer = client.post(
        "/subscribe",
        headers={"Transfer-Encoding": "chunked"},
        content_type="application/x-www-form-urlencoded",
        environ_overrides={"wsgi.input": stream(), "wsgi.input_terminated": True},
    )
    _assert_clear_page(answer, 400)
    _assert_nothing_happened(before, run_jobs, inbox)
    api = client.post(
        "/api/v1/subscribe",
        headers={"Transfer-Encoding": "chunked"},
        content_type="application/json",
        environ_overrides={"wsgi.input": stream(), "wsgi.input_terminated": True},
    )
    assert api.status_code == 400 and api.mimetype == "application/json"
    _assert_nothing_happened(before, run_jobs, inbox)


@pytest.mark.parametrize("n", [TOO_BIG, 99_999_999_999])
def test_api_ids_and_cursors_beyond_the_range_get_json_4xx(world, app, run_jobs, inbox, n):
    client, auth = app.test_client(), bearer(app)
    before = db_snapshot()
    for method, path in [
        ("get", "/api/v1/subscribers/{n}"),
        ("patch", "/api/v1/subscribers/{n}"),
        ("delete", "/api/v1/subscribers/{n}"),
        ("get", "/api/v1/issues/{n}"),
        ("get", "/api/v1/issues/{n}/status"),
        ("post", "/api/v1/issues/{n}/send"),
    ]:
        answer = getattr(client, method)(path.format(n=n), headers=auth, json={})
        assert answer.status_code == 404, path
        assert answer.mimetype == "application/json"
    for path in ("/api/v1/subscribers?cursor={n}", "/api/v1/issues?cursor={n}"):
        answer = client.get(path.format(n=n), headers=auth)
        if len(str(n)) <= 10:  # the document's cursor: past the largest id is the list's top
            assert answer.status_code == 200 and answer.get_json()["next_cursor"] is None, path
        else:
            assert answer.status_code == 400, path
            assert answer.get_json()["error"]["field"] == "cursor"
    _assert_nothing_happened(before, run_jobs, inbox)


@pytest.mark.parametrize("page", ["abc", "0", "-1", "1.5", "1e3", "%00", "\u0661"])
def test_an_editor_page_number_that_is_not_one_gets_a_400_page(world, app, page):
    answer = editor_client(app).get("/editor/", query_string={"page": page})
    _assert_clear_page(answer, 400, "whole number from 1")


@pytest.mark.parametrize("page", ["2", "99", str(2**31), str(10**23), "9" * 5000])
def test_an_editor_page_past_the_last_says_how_many_there_are(world, app, page):
    client = editor_client(app)
    _assert_clear_page(client.get(f"/editor/?page={page}"), 404, "has 1 page(s)")
    first = client.get("/editor/?page=1")
    assert first.status_code == 200 and "Traceback" not in first.get_data(as_text=True)
