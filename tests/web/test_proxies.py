"""TRUSTED_PROXIES: believe X-Forwarded-For only from as many proxies as the operator runs."""

from __future__ import annotations

import pytest

from newsletter.app import create_app
from newsletter.config import ConfigError
from tests.helpers import csrf_from
from tests.helpers.readers import outcome, subscriber

PROXY = "10.0.0.5"  # the reverse proxy, as the app sees it


def via_proxy(client, email: str, client_ip: str):
    """Send the subscribe form through a proxy that says who the client is; say what came."""
    page = client.get("/", environ_base={"REMOTE_ADDR": PROXY})
    answer = client.post(
        "/subscribe",
        data={"email": email, "csrf_token": csrf_from(page.get_data(as_text=True))},
        headers={"X-Forwarded-For": client_ip},
        environ_base={"REMOTE_ADDR": PROXY},
    )
    return outcome(answer)


def test_behind_one_proxy_each_client_address_has_its_own_limit(make_app):
    app = make_app(SUBSCRIBE_RATE_LIMIT="2/600", TRUSTED_PROXIES="1")
    client = app.test_client()
    assert via_proxy(client, "a1@example.com", "198.51.100.1") == "accepted"
    assert via_proxy(client, "a2@example.com", "198.51.100.1") == "accepted"
    assert via_proxy(client, "a3@example.com", "198.51.100.1") == "proof"
    # Someone else behind the same proxy is not held back by the first visitor.
    assert via_proxy(client, "b1@example.com", "203.0.113.9") == "accepted"
    with app.app_context():
        assert subscriber("b1@example.com").signup_ip == "203.0.113.9"


def test_a_spoofed_header_gives_nothing_when_no_proxy_is_trusted(make_app):
    app = make_app(SUBSCRIBE_RATE_LIMIT="2/600")
    client = app.test_client()
    assert via_proxy(client, "c1@example.com", "198.51.100.1") == "accepted"
    assert via_proxy(client, "c2@example.com", "198.51.100.2") == "accepted"
    # A new made-up address per request does not get around the limit.
    assert via_proxy(client, "c3@example.com", "198.51.100.3") == "proof"
    with app.app_context():
        assert subscriber("c1@example.com").signup_ip == PROXY


def test_only_the_hops_of_trusted_proxies_are_believed(make_app):
    # The client put its own X-Forwarded-For in; our one proxy appended the real address.
    app = make_app(SUBSCRIBE_RATE_LIMIT="1/600", TRUSTED_PROXIES="1")
    client = app.test_client()
    assert via_proxy(client, "d1@example.com", "1.2.3.4, 198.51.100.1") == "accepted"
    assert via_proxy(client, "d2@example.com", "5.6.7.8, 198.51.100.1") == "proof"


@pytest.mark.parametrize("value", ["yes", "-1", "1.5", "11"])
def test_a_bad_trusted_proxies_value_is_one_clear_error(tmp_path, value):
    with pytest.raises(ConfigError, match=r"^TRUSTED_PROXIES: expected the number of reverse"):
        create_app({"TRUSTED_PROXIES": value, "INSTANCE_PATH": str(tmp_path)})
