"""Settings that would be unsafe on a real server, read from the real settings loader."""

from __future__ import annotations

import pytest

from newsletter.config import ConfigError, load_settings
from newsletter.doctor.settings import check_settings


def test_a_production_setup_is_ok(settings):
    check = check_settings(settings(SMTP_HOST="smtp.example.net", SMTP_SECURITY="starttls"))
    assert check.status == "ok", check
    assert check.summary == "nothing unsafe for production"
    assert check.detail == ()


def test_development_defaults_are_warnings_naming_each_setting(tmp_path):
    instance = tmp_path / "instance"
    config = load_settings({}, instance)
    check = check_settings(config)
    assert check.status == "warn"
    assert check.summary == (
        "to change before production: NEWSLETTER_ENV, SECRET_KEY, BASE_URL, SMTP_HOST, "
        "MAIL_FROM, POSTAL_ADDRESS"
    )
    assert check.detail[1].startswith(
        "warn: SECRET_KEY is the one generated into the instance folder for development"
    )
    assert check.detail[3] == (
        "warn: SMTP_HOST is 127.0.0.1:8025, the dev mail catcher: no reader gets any mail; "
        "set SMTP_HOST and SMTP_PORT to your relay"
    )
    assert check.detail[-2].startswith("note: REDIS_URL is not set")
    assert check.detail[-1].startswith("note: the database is SQLite")


def test_production_with_unsafe_values_fails(settings):
    config = settings(
        BASE_URL="http://127.0.0.1:5000",
        SMTP_HOST="smtp.example.net",
        SMTP_USERNAME="news",
        SMTP_PASSWORD="secret",
        MAIL_FROM="",
        POSTAL_ADDRESS="",
        REDIS_URL="",
        DATABASE_URL="",
    )
    check = check_settings(config)
    assert check.status == "fail"
    assert check.summary == (
        "unsafe in production: BASE_URL, SMTP_SECURITY, MAIL_FROM, POSTAL_ADDRESS, REDIS_URL"
    )
    assert (
        "fail: SMTP_SECURITY is none with the relay smtp.example.net: every copy and the SMTP "
        "password crosses the network unencrypted; set starttls (port 587) or tls (port 465)"
    ) in check.detail
    assert any(line.startswith("warn: REDIS_URL is not set") for line in check.detail)
    assert any(line.startswith("note: the database is SQLite") for line in check.detail)


def test_plain_http_in_production_fails(settings):
    check = check_settings(settings(BASE_URL="http://news.example.com"))
    assert check.status == "fail"
    assert check.detail == (
        "fail: BASE_URL is http://news.example.com: links in mail and the editor's login "
        "cookie travel unencrypted; serve the site over https and set BASE_URL to it",
    )


def test_a_short_secret_key_fails_even_in_development(tmp_path):
    config = load_settings({"SECRET_KEY": "short"}, tmp_path)
    check = check_settings(config)
    assert check.status == "fail"
    assert "fail: SECRET_KEY is 5 bytes" in check.detail[1]


def test_a_password_to_a_relay_on_this_machine_without_tls_is_a_warning(settings):
    check = check_settings(settings(SMTP_USERNAME="u", SMTP_PASSWORD="p"))
    assert check.status == "warn"
    assert check.summary == "unsafe in production: SMTP_SECURITY"


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("DNS_NAMESERVER", "dns.example.net", "DNS_NAMESERVER: expected a DNS server's IP"),
        ("DNS_NAMESERVER", "127.0.0.1:99999", "DNS_NAMESERVER: expected a DNS server's IP"),
        ("BOUNCE_ADDRESS", "Bounces <b@example.org>", "BOUNCE_ADDRESS: expected a plain address"),
        ("BOUNCE_ADDRESS", "b@localhost", "BOUNCE_ADDRESS: expected a plain address"),
    ],
)
def test_bad_new_settings_stop_start_up_with_one_line(tmp_path, name, value, message):
    with pytest.raises(ConfigError) as caught:
        load_settings({name: value}, tmp_path)
    assert str(caught.value).startswith(message)


def test_the_new_settings_are_read(tmp_path):
    config = load_settings(
        {"DNS_NAMESERVER": "[::1]:5353", "BOUNCE_ADDRESS": "bounces@example.org"}, tmp_path
    )
    assert config.dns_nameserver == ("::1", 5353)
    assert config.bounce_address == "bounces@example.org"
    assert load_settings({}, tmp_path).dns_nameserver is None
