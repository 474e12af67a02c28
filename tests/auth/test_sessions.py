"""An editor's session ends at log out everywhere, after a password change, when idle and at
its maximum age."""

from __future__ import annotations

import time

import pytest

from newsletter.config import ConfigError, load_settings
from tests.helpers import truncate_all
from tests.helpers.editors import add_editor, login, post_form

HOUR = 3600


@pytest.fixture
def clock(monkeypatch):
    """Move the wall clock forward: ``clock(seconds)``."""
    real = time.time
    offset = [0.0]
    monkeypatch.setattr(time, "time", lambda: real() + offset[0])

    def advance(seconds: float) -> None:
        offset[0] += seconds

    return advance


def _login_redirect(response) -> bool:
    return response.status_code == 302 and response.headers["Location"].startswith("/editor/login")


def _copy_session(app, client):
    """Return a second browser holding a copy of ``client``'s session cookie."""
    copy = app.test_client()
    copy.set_cookie("session", client.get_cookie("session").value)
    return copy


def test_a_cookie_copied_before_logout_gets_the_login_page_after_it(app, client):
    add_editor()
    login(client)
    stolen = _copy_session(app, client)
    assert stolen.get("/editor/").status_code == 200

    assert post_form(client, "/editor/", "/editor/logout").status_code == 302
    assert _login_redirect(stolen.get("/editor/"))
    assert _login_redirect(client.get("/editor/"))


def test_logging_out_ends_the_editors_sessions_in_every_browser(app, client):
    add_editor()
    login(client)
    laptop = app.test_client()
    login(laptop)
    post_form(client, "/editor/", "/editor/logout")
    assert _login_redirect(laptop.get("/editor/"))
    # Logging in again works, and a new session is not ended by the old log out.
    assert login(laptop).status_code == 302
    assert laptop.get("/editor/").status_code == 200


def test_a_password_change_on_the_command_line_ends_open_sessions(app, client):
    add_editor()
    login(client)
    assert client.get("/editor/").status_code == 200
    result = app.test_cli_runner().invoke(
        args=["editors", "passwd", "ed@example.org", "--password-stdin"],
        input="the new passphrase\n",
    )
    assert result.exit_code == 0, result.output
    assert _login_redirect(client.get("/editor/"))


def test_a_session_idle_past_the_limit_gets_the_login_page(app, client, clock):
    add_editor()
    login(client)
    assert client.get("/editor/").status_code == 200
    # Activity keeps it open: each visit within 12 hours counts from the last one.
    for _ in range(2):
        clock(12 * HOUR - 60)
        assert client.get("/editor/").status_code == 200
    clock(12 * HOUR + 1)
    assert _login_redirect(client.get("/editor/"))
    assert login(client).status_code == 302
    assert client.get("/editor/").status_code == 200


def test_a_session_ends_after_seven_days_however_busy(app, client, clock):
    add_editor()
    login(client)
    for _ in range(15):  # 165 hours, never idle for long
        clock(11 * HOUR)
        assert client.get("/editor/").status_code == 200
    clock(11 * HOUR)
    assert _login_redirect(client.get("/editor/"))


def test_the_last_activity_is_written_at_most_once_a_minute(app, client, clock):
    add_editor()
    login(client)
    client.get("/editor/")  # the first page after login stores a new CSRF secret

    def sets_cookie(response) -> bool:
        return any(c.startswith("session=") for c in response.headers.getlist("Set-Cookie"))

    clock(30)
    assert not sets_cookie(client.get("/editor/"))
    clock(31)
    assert sets_cookie(client.get("/editor/"))
    assert not sets_cookie(client.get("/editor/"))


def test_the_limits_are_settings(make_app, clock):
    app = make_app(EDITOR_SESSION_IDLE="600", EDITOR_SESSION_MAX="3600")
    with app.app_context():
        truncate_all()
        add_editor()
        client = app.test_client()
        login(client)
        clock(599)
        assert client.get("/editor/").status_code == 200
        clock(601)
        assert _login_redirect(client.get("/editor/"))


@pytest.mark.parametrize(
    ("idle", "longest", "named"),
    [("59", "", "EDITOR_SESSION_IDLE"), ("3600", "600", "EDITOR_SESSION_MAX"), ("x", "", "IDLE")],
)
def test_bad_session_limits_are_refused_naming_the_setting(tmp_path, idle, longest, named):
    env = {"EDITOR_SESSION_IDLE": idle, "EDITOR_SESSION_MAX": longest}
    with pytest.raises(ConfigError, match=named):
        load_settings(env, tmp_path)
