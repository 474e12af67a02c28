"""PostgreSQL restarts under a running app: readers never see a traceback, and it reconnects.

A restart ends every server process, so the pooled connections die; terminating this app's
backends with pg_terminate_backend does exactly that to them, and to nothing else.
"""

from __future__ import annotations

import time

import pytest
import sqlalchemy as sa

from newsletter.app import PING_AFTER_IDLE
from tests.helpers import TEST_DATABASE_URL, csrf_from, truncate_all
from tests.helpers.editors import bearer
from tests.helpers.readers import subscriber

pytestmark = pytest.mark.skipif(not TEST_DATABASE_URL, reason="PostgreSQL only")

APP_NAME = "restart-test"


def _kill_app_connections() -> int:
    """End every server process serving this app's pool, as a restart would."""
    url = TEST_DATABASE_URL.replace("postgresql://", "postgresql+psycopg://", 1)
    admin = sa.create_engine(url, poolclass=sa.pool.NullPool)
    try:
        with admin.connect() as conn:
            killed = conn.execute(
                sa.text(
                    "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                    "WHERE application_name = :name AND pid <> pg_backend_pid()"
                ),
                {"name": APP_NAME},
            ).scalar_one()
    finally:
        admin.dispose()
    time.sleep(0.2)  # the server closes the sockets
    return int(killed)


@pytest.fixture
def pg_app(make_app):
    """The app with no app context held open: each request has its own, as in production,
    so its connection goes back to the pool when the request ends."""
    app = make_app(
        SQLALCHEMY_ENGINE_OPTIONS={"connect_args": {"application_name": APP_NAME}},
    )
    with app.app_context():
        truncate_all()
    return app


def test_a_sign_up_right_after_a_restart_is_kept(pg_app):
    client = pg_app.test_client()
    token = csrf_from(client.get("/").text)
    form = {"email": "first@example.com", "csrf_token": token}
    assert client.post("/subscribe", data=form).status_code == 303  # on to "check your inbox"
    assert _kill_app_connections() >= 1

    # Within a second of its last use a connection is not pinged: the sign-up meets the dead
    # connection, and is tried again on a fresh one.
    form = {"email": "second@example.com", "csrf_token": token}
    answer = client.post("/subscribe", data=form, follow_redirects=True)
    assert answer.status_code == 200 and "inbox" in answer.text.lower()
    with pg_app.app_context():
        assert subscriber("second@example.com") is not None


def test_any_other_page_says_try_again_then_works(pg_app):
    client = pg_app.test_client()
    assert client.get("/archive").status_code == 200
    assert _kill_app_connections() >= 1
    page = client.get("/archive")
    assert page.status_code == 503 and page.headers["Retry-After"] == "5"
    assert "Nothing was changed" in page.text and "Traceback" not in page.text
    assert client.get("/archive").status_code == 200  # the pool reconnected


def test_the_api_answers_503_in_json_then_works(pg_app):
    client = pg_app.test_client()
    with pg_app.app_context():
        auth = bearer(pg_app)
    assert client.get("/api/v1/subscribers", headers=auth).status_code == 200
    assert _kill_app_connections() >= 1
    answer = client.get("/api/v1/subscribers", headers=auth)
    assert answer.status_code == 503 and answer.get_json()["error"]["code"] == "unavailable"
    assert client.get("/api/v1/subscribers", headers=auth).status_code == 200


def test_a_connection_idle_for_a_while_is_checked_before_use(pg_app):
    client = pg_app.test_client()
    assert client.get("/archive").status_code == 200
    assert _kill_app_connections() >= 1
    time.sleep(PING_AFTER_IDLE + 0.2)
    assert client.get("/archive").status_code == 200  # pinged, found dead, replaced
