"""`newsletter doctor`: one line per check, details indented, exit 1 only when one fails."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from tests.doctor.relays import RefusingServer
from tests.doctor.world import publish_everything

HEALTHY = {
    "NEWSLETTER_ENV": "production",
    "BASE_URL": "https://news.example.com",
    "MAIL_FROM": "Example Tips <tips@example.com>",
}


@pytest.fixture
def doctor(make_app, dns_server, dkim_pem):
    """Run `newsletter doctor ARGS` on an app with these settings; return the result."""

    def run(*args, **settings):
        values = {
            **HEALTHY,
            "DNS_NAMESERVER": dns_server.address,
            "DKIM_DOMAIN": "example.com",
            "DKIM_SELECTOR": "tips",
            "DKIM_PRIVATE_KEY": dkim_pem,
            **settings,
        }
        app = make_app(**{k: v for k, v in values.items() if v is not None})
        return app.test_cli_runner().invoke(args=["doctor", *args])

    return run


def headlines(output: str) -> list[str]:
    return [line for line in output.splitlines() if not line.startswith(" ")]


def test_a_healthy_setup_prints_ok_for_every_check_and_exits_0(
    doctor, zone, dkim_keys, inbox, smtp_controller
):
    publish_everything(zone, dkim_keys[0])
    result = doctor()
    assert result.exit_code == 0, result.output
    port = smtp_controller[0].port
    assert headlines(result.output) == [
        "ok settings: nothing unsafe for production",
        f"ok smtp: 127.0.0.1:{port} answered EHLO; nothing was sent",
        "ok spf: example.com authorises the relay 127.0.0.1 (ip4:127.0.0.1); ends -all "
        "(others fail)",
        "ok dkim: d=example.com s=tips: the published rsa key (2048 bits) matches DKIM_PRIVATE_KEY",
        "ok dmarc: p=reject at _dmarc.example.com; From example.com aligned by "
        "DKIM d=example.com (relaxed) and SPF on example.com (relaxed)",
        "ok bounces: bounces to tips@example.com arrive at example.com's MX (10 mx.example.com)",
        "ok images: kept in the instance folder (no S3_BUCKET)",
    ]
    assert "    connect: 220 " in result.output
    assert "    BOUNCE_ADDRESS is not set: bounces come back to tips@example.com" in result.output
    assert inbox.messages == []


def test_missing_records_fail_and_exit_1(doctor, zone):
    zone.a("relay.example.net", "192.0.2.25")
    result = doctor(DKIM_DOMAIN=None, DKIM_SELECTOR=None, DKIM_PRIVATE_KEY=None)
    assert result.exit_code == 1
    lines = headlines(result.output)
    assert lines[0] == "ok settings: nothing unsafe for production"
    assert lines[2:] == [
        "fail spf: example.com does not exist in DNS (NXDOMAIN)",
        "warn dkim: DKIM signing is off: Gmail and Yahoo want DKIM from bulk senders",
        "fail dmarc: no DMARC record at _dmarc.example.com: Gmail and Yahoo require one from "
        "bulk senders",
        "fail bounces: example.com does not exist in DNS (NXDOMAIN): bounces to "
        "tips@example.com are lost",
        "ok images: kept in the instance folder (no S3_BUCKET)",
    ]
    assert "Traceback" not in result.output


def test_json_lists_every_check(doctor, zone, dkim_keys):
    publish_everything(zone, dkim_keys[0])
    result = doctor("--json")
    assert result.exit_code == 0, result.output
    checks = json.loads(result.output)
    names = ["settings", "smtp", "spf", "dkim", "dmarc", "bounces", "images"]
    assert [c["name"] for c in checks] == names
    assert {c["status"] for c in checks} == {"ok"}
    assert checks[2]["detail"][0] == "example.com: v=spf1 ip4:127.0.0.1 -all"


def test_a_relay_refusing_us_fails_with_its_answer(doctor, zone, dkim_keys):
    publish_everything(zone, dkim_keys[0])
    server = RefusingServer()
    try:
        result = doctor(SMTP_PORT=str(server.port))
    finally:
        server.close()
    assert result.exit_code == 1
    assert headlines(result.output)[1] == (
        f"fail smtp: 127.0.0.1:{server.port} refused us at connect: "
        "554 5.7.1 no service for your address"
    )


def test_a_dns_server_that_never_answers_is_a_warning_per_check(doctor, silent_dns):
    result = doctor("--nameserver", silent_dns.address)
    assert result.exit_code == 0, result.output
    lines = headlines(result.output)
    assert lines[2] == (
        f"warn spf: DNS lookup could not be made: no answer from {silent_dns.address} within "
        "3 s (asking TXT example.com)"
    )
    for line in lines[3:-1]:  # the last is the image store's, which asks no DNS
        assert line.endswith("(not asked again after the first timeout)"), line


def test_a_bad_nameserver_option_is_one_clear_line(doctor):
    result = doctor("--nameserver", "dns.example.net")
    assert result.exit_code == 2
    assert result.output.splitlines()[-1] == (
        "Error: --nameserver: expected a DNS server's IP address with an optional port, like "
        "127.0.0.1:53 or [::1]:5353, got 'dns.example.net'"
    )


def test_under_testing_no_resolver_is_asked_unless_named(doctor, zone):
    result = doctor(NEWSLETTER_ENV="testing", DNS_NAMESERVER=None)
    lines = headlines(result.output)
    assert lines[2] == (
        "warn spf: DNS lookup could not be made: NEWSLETTER_ENV=testing and no DNS_NAMESERVER set"
    )
    assert zone.queries == []


def test_a_bad_dns_nameserver_setting_stops_the_command_with_one_line(tmp_path):
    env = {
        **os.environ,
        "NEWSLETTER_ENV": "testing",
        "INSTANCE_PATH": str(tmp_path),
        "DNS_NAMESERVER": "resolver.example.net",
    }
    result = subprocess.run(
        [sys.executable, "-m", "newsletter.main", "doctor"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        cwd=tmp_path,
    )
    assert result.returncode == 2
    assert result.stderr.strip() == (
        "newsletter: bad setting: DNS_NAMESERVER: expected a DNS server's IP address with an "
        "optional port, like 127.0.0.1:53 or [::1]:5353, got 'resolver.example.net'"
    )
