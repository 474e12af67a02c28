"""Pages while Redis is down: a clear "try again in a moment", never a traceback."""

from __future__ import annotations

from tests.helpers import free_port, truncate_all
from tests.helpers.editors import add_editor, login


def test_logging_in_while_redis_is_down_says_try_again(make_app):
    # Nothing listens on this port: every Redis call fails at once, as during a restart.
    app = make_app(REDIS_URL=f"redis://127.0.0.1:{free_port()}/0")
    with app.app_context():
        truncate_all()
        add_editor()
        client = app.test_client()
        answer = login(client)
        assert answer.status_code == 503
        assert answer.headers["Retry-After"] == "5"
        assert "Traceback" not in answer.get_data(as_text=True)
        assert "try again" in answer.get_data(as_text=True).lower()
        # The login throttle cannot count tries without Redis, so it lets nobody in.
        assert client.get("/editor/").status_code == 302
