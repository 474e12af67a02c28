"""Editors log in with a password, are throttled when they guess, and nothing opens without it."""

from __future__ import annotations

import re

import pytest
from werkzeug.routing.converters import NumberConverter

from newsletter.auth.passwords import hash_password, verify_password
from newsletter.auth.sessions import safe_next
from newsletter.extensions import db
from tests.helpers import truncate_all
from tests.helpers.editors import PASSWORD, add_editor, login, page_token, post_form


def test_a_password_hash_is_argon2_and_verifies_only_the_same_password():
    hashed = hash_password("a long enough passphrase")
    assert hashed.startswith("$argon2id$")
    assert verify_password(hashed, "a long enough passphrase")
    assert not verify_password(hashed, "a long enough passphrasE")
    assert not verify_password("not a hash", "anything at all")


def test_an_editor_logs_in_sees_the_issues_and_logs_out(app, client):
    add_editor()
    response = login(client, "ED@example.org ")
    assert response.status_code == 302
    assert response.headers["Location"] == "/editor/"
    page = client.get("/editor/").get_data(as_text=True)
    assert "Issues" in page and "Log out" in page
    response = post_form(client, "/editor/", "/editor/logout")
    assert response.status_code == 302
    assert client.get("/editor/").status_code == 302


def test_logout_needs_a_post_with_a_csrf_token(app, client):
    add_editor()
    login(client)
    assert client.get("/editor/logout").status_code == 405
    assert client.post("/editor/logout").status_code == 400
    assert client.get("/editor/").status_code == 200


def test_an_unknown_account_gets_the_same_answer_as_a_wrong_password(app, client):
    add_editor()
    wrong = login(client, "ed@example.org", "not the password at all")
    unknown = login(client, "nobody@example.org", "not the password at all")
    assert wrong.status_code == unknown.status_code == 401

    def message(r):
        return re.search(r'role="alert">([^<]+)<', r.get_data(as_text=True)).group(1)

    assert (
        message(wrong)
        == message(unknown)
        == ("That email and password do not match an editor account.")
    )


def test_five_wrong_passwords_lock_the_account_even_for_the_right_one(app, client):
    add_editor()
    for _ in range(5):
        assert login(client, password="wrong password here").status_code == 401
    blocked = login(client)
    assert blocked.status_code == 429
    assert "Too many failed attempts. Try again in 15 minutes." in blocked.get_data(as_text=True)
    assert int(blocked.headers["Retry-After"]) > 800
    assert client.get("/editor/").status_code == 302  # still not logged in
    # Another account from another address is not affected.
    add_editor("other@example.org")
    other = app.test_client()
    token = page_token(other, "/editor/login")
    response = other.post(
        "/editor/login",
        data={"email": "other@example.org", "password": PASSWORD, "csrf_token": token},
        environ_base={"REMOTE_ADDR": "10.0.0.9"},
    )
    assert response.status_code == 302


def test_an_unknown_account_is_locked_like_a_real_one(app, client):
    for _ in range(5):
        assert login(client, "ghost@example.org", "wrong password here").status_code == 401
    assert login(client, "ghost@example.org", "wrong password here").status_code == 429


def test_many_failures_from_one_address_lock_that_address_for_every_account(app, client):
    add_editor()
    for n in range(20):
        assert login(client, f"guess{n}@example.org", "wrong password here").status_code == 401
    assert login(client).status_code == 429
    elsewhere = app.test_client()
    token = page_token(elsewhere, "/editor/login")
    response = elsewhere.post(
        "/editor/login",
        data={"email": "ed@example.org", "password": PASSWORD, "csrf_token": token},
        environ_base={"REMOTE_ADDR": "192.0.2.44"},
    )
    assert response.status_code == 302


def test_a_good_login_forgets_the_accounts_earlier_failures(app, client):
    add_editor()
    for _ in range(4):
        login(client, password="wrong password here")
    assert login(client).status_code == 302
    post_form(client, "/editor/", "/editor/logout")
    for _ in range(4):
        assert login(client, password="wrong password here").status_code == 401
    assert login(client).status_code == 302


def test_login_without_a_csrf_token_is_refused(app, client):
    add_editor()
    response = client.post("/editor/login", data={"email": "ed@example.org", "password": PASSWORD})
    assert response.status_code == 400
    assert client.get("/editor/").status_code == 302


def test_the_session_cookie_is_httponly_and_samesite_lax(app, client):
    add_editor()
    response = login(client)
    cookie = next(c for c in response.headers.getlist("Set-Cookie") if c.startswith("session="))
    assert "HttpOnly" in cookie
    assert "SameSite=Lax" in cookie
    assert "Secure" not in cookie  # BASE_URL is http:// in the tests


def test_the_session_cookie_is_secure_when_the_site_is_https(make_app):
    app = make_app(BASE_URL="https://news.example.org")
    with app.app_context():
        truncate_all()
        add_editor()
        client = app.test_client()
        response = login(client)
        cookie = next(c for c in response.headers.getlist("Set-Cookie") if c.startswith("session="))
        assert "Secure" in cookie


def test_logging_in_starts_a_fresh_session(app, client):
    add_editor()
    with client.session_transaction() as session:
        session["planted"] = "by an attacker"
    login(client)
    with client.session_transaction() as session:
        assert "planted" not in session
        assert session["editor_id"]


def test_changing_the_password_ends_other_sessions(app, client):
    editor = add_editor()
    login(client)
    assert client.get("/editor/").status_code == 200

    editor.password_hash = hash_password("a brand new passphrase")
    db.session.commit()
    assert client.get("/editor/").status_code == 302


def _sample_url(rule) -> str:
    values = {}
    for arg in rule.arguments:
        values[arg] = 1 if isinstance(rule._converters[arg], NumberConverter) else "x"
    return rule.build(values, append_unknown=False)[1]


def test_every_editor_page_sends_an_anonymous_visitor_to_the_login(app, client):
    rules = [r for r in app.url_map.iter_rules() if r.rule.startswith("/editor")]
    assert len(rules) > 10
    checked = 0
    for rule in rules:
        if rule.endpoint == "editor.login":
            continue
        url = _sample_url(rule)
        if "GET" in rule.methods:
            response = client.get(url)
            assert response.status_code == 302, url
            assert response.headers["Location"].startswith("/editor/login?next="), url
            checked += 1
    assert checked > 5


def test_every_editor_action_refuses_an_anonymous_post_even_with_a_csrf_token(app, client):
    token = page_token(client, "/editor/login")
    for rule in app.url_map.iter_rules():
        if not rule.rule.startswith("/editor") or rule.endpoint == "editor.login":
            continue
        if "POST" in rule.methods and rule.endpoint != "editor.logout":
            url = _sample_url(rule)
            response = client.post(url, data={"csrf_token": token})
            assert response.status_code == 302, url
            assert response.headers["Location"].startswith("/editor/login"), url


def test_after_login_the_editor_lands_where_they_wanted_to_go(app, client):
    add_editor()
    response = client.get("/editor/issues/new")
    assert response.headers["Location"] == "/editor/login?next=/editor/issues/new"
    response = login(client, next="/editor/issues/new")
    assert response.headers["Location"] == "/editor/issues/new"


@pytest.mark.parametrize(
    "target",
    [
        "https://evil.example/",
        "//evil.example/x",
        "/\\evil.example",
        "javascript:alert(1)",
        "/editor/\r\nSet-Cookie: x=1",
        "editor/",
    ],
)
def test_login_never_redirects_off_the_site(app, client, target):
    add_editor()
    response = login(client, next=target)
    assert response.status_code == 302
    assert response.headers["Location"] == "/editor/"
    assert safe_next(target, "/fallback") == "/fallback"


def test_oversized_or_odd_login_input_is_a_clear_refusal(app, client):
    add_editor()
    for email, password in (
        ("ed@example.org", "x" * 10_000),
        ("ed@example.org\r\nBcc: x@example.org", PASSWORD),
        ("e" * 5_000 + "@example.org", PASSWORD),
        ("", ""),
    ):
        response = login(client, email, password)
        assert response.status_code == 401
        assert "do not match an editor account" in response.get_data(as_text=True)
    assert client.get("/editor/").status_code == 302
