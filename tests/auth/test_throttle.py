"""The login throttle holds under concurrent guessing, and cannot lock an editor out of a
browser they have logged in from before."""

from __future__ import annotations

import threading
from collections import Counter
from concurrent.futures import ThreadPoolExecutor

from tests.helpers import csrf_from
from tests.helpers.editors import PASSWORD, add_editor, login, page_token, post_form

WRONG = "wrong password here"
ATTACKER = {"REMOTE_ADDR": "203.0.113.7"}


def _attacker_login(app, password: str = PASSWORD):
    attacker = app.test_client()
    token = page_token(attacker, "/editor/login")
    return attacker.post(
        "/editor/login",
        data={"email": "ed@example.org", "password": password, "csrf_token": token},
        environ_base=ATTACKER,
    )


def _block_the_account(app) -> None:
    for _ in range(5):
        assert _attacker_login(app, WRONG).status_code == 401
    blocked = _attacker_login(app)
    assert blocked.status_code == 429
    assert "Too many failed attempts" in blocked.get_data(as_text=True)


def test_twelve_concurrent_wrong_passwords_get_only_five_checked(app):
    add_editor()
    attempts = 12
    start = threading.Barrier(attempts)

    def guess(_n: int) -> int:
        # Each thread is its own browser, with its own app context and database session.
        browser = app.test_client()
        token = csrf_from(browser.get("/editor/login").get_data(as_text=True))
        start.wait(timeout=30)
        data = {"email": "ed@example.org", "password": WRONG, "csrf_token": token}
        return browser.post("/editor/login", data=data).status_code

    with ThreadPoolExecutor(attempts) as pool:
        answers = Counter(pool.map(guess, range(attempts)))
    # A 401 is a password that was checked; the rest were refused before the check.
    assert answers == {401: 5, 429: 7}


def test_the_owner_gets_in_from_a_browser_that_logged_in_before(app, client):
    add_editor()
    assert login(client).status_code == 302
    post_form(client, "/editor/", "/editor/logout")

    _block_the_account(app)
    # A browser without the known-device cookie is still refused, even with the password.
    assert _attacker_login(app).status_code == 429
    response = login(client)
    assert response.status_code == 302
    assert client.get("/editor/").status_code == 200
    # The owner's way in did not lift the block for the attacker.
    assert _attacker_login(app).status_code == 429


def test_the_known_device_cookie_is_httponly_long_lived_and_for_editor_pages_only(app, client):
    add_editor()
    response = login(client)
    cookie = next(
        c for c in response.headers.getlist("Set-Cookie") if c.startswith("editor_device=")
    )
    assert "HttpOnly" in cookie
    assert "SameSite=Lax" in cookie
    assert "Path=/editor" in cookie
    max_age = int(cookie.split("Max-Age=", 1)[1].split(";", 1)[0])
    assert max_age >= 90 * 24 * 3600


def test_a_known_device_of_another_account_or_a_forged_one_does_not_help(app, client):
    add_editor()
    add_editor("other@example.org")
    assert login(client, "other@example.org").status_code == 302
    post_form(client, "/editor/", "/editor/logout")
    _block_the_account(app)
    assert login(client).status_code == 429

    forged = app.test_client()
    forged.set_cookie("editor_device", "eyJhIjoiZm9yZ2VkIn0.forged.signature", path="/editor")
    assert login(forged).status_code == 429


def test_a_known_device_has_its_own_limit_of_wrong_passwords(app, client):
    add_editor()
    login(client)
    post_form(client, "/editor/", "/editor/logout")
    _block_the_account(app)
    for _ in range(5):
        assert login(client, password=WRONG).status_code == 401
    refused = login(client)
    assert refused.status_code == 429
    assert "Too many failed attempts" in refused.get_data(as_text=True)
