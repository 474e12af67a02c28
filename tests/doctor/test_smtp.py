"""The relay check against real servers: each stage's answer, and nothing is ever sent."""

from __future__ import annotations

import pytest

from newsletter.doctor.smtp import check_smtp
from tests.doctor.relays import PASSWORD, USERNAME, RefusingServer
from tests.helpers import free_port
from tests.helpers.smtp import SilentServer


def test_a_plain_relay_on_this_machine_answers_ehlo_and_nothing_is_sent(settings, relay):
    server = relay()
    check = check_smtp(settings(SMTP_PORT=str(server.port)))
    assert check.status == "ok", check
    assert check.summary == f"127.0.0.1:{server.port} answered EHLO; nothing was sent"
    assert check.detail[0].startswith("connect: 220 ")
    assert check.detail[1].startswith("EHLO: 250 ")
    assert server.recorder.ehlos == 1
    assert server.recorder.mail_from == []


def test_starttls_with_a_trusted_certificate_and_a_good_login(
    settings, relay, certificates, trust_test_ca
):
    server = relay(certificates, auth=True)
    config = settings(
        SMTP_PORT=str(server.port),
        SMTP_SECURITY="starttls",
        SMTP_USERNAME=USERNAME,
        SMTP_PASSWORD=PASSWORD,
    )
    check = check_smtp(config)
    assert check.status == "ok", check
    assert check.summary == (
        f"127.0.0.1:{server.port} answered EHLO, TLS and our login; nothing was sent"
    )
    stages = [line.split(":", 1)[0] for line in check.detail]
    assert stages == ["connect", "EHLO", "STARTTLS", "EHLO after STARTTLS", "AUTH"]
    assert "certificate for 127.0.0.1 verified" in check.detail[2]
    assert check.detail[4].startswith("AUTH: 235 ") and check.detail[4].endswith(f"(as {USERNAME})")
    assert server.recorder.mail_from == []


def test_a_wrong_password_fails_with_the_relays_answer(
    settings, relay, certificates, trust_test_ca
):
    server = relay(certificates, auth=True)
    config = settings(
        SMTP_PORT=str(server.port),
        SMTP_SECURITY="starttls",
        SMTP_USERNAME=USERNAME,
        SMTP_PASSWORD="not it",
    )
    check = check_smtp(config)
    assert check.status == "fail"
    assert check.summary.startswith(f"the relay refused our login as {USERNAME}: 535 ")
    assert server.recorder.mail_from == []


def test_a_certificate_nobody_vouches_for_fails_verification_by_default(
    settings, relay, certificates
):
    server = relay(certificates)
    check = check_smtp(settings(SMTP_PORT=str(server.port), SMTP_SECURITY="starttls"))
    assert check.status == "fail"
    assert check.summary.startswith("STARTTLS: the relay's certificate is not trusted (")
    assert "SSL_CERT_FILE" in check.summary


def test_implicit_tls_is_checked_from_the_first_byte(settings, relay, certificates, trust_test_ca):
    server = relay(certificates, implicit_tls=True)
    check = check_smtp(settings(SMTP_PORT=str(server.port), SMTP_SECURITY="tls"))
    assert check.status == "ok", check
    assert check.summary == f"127.0.0.1:{server.port} answered EHLO and TLS; nothing was sent"
    assert check.detail[0].startswith("TLS: TLSv1.")


def test_implicit_tls_against_a_plain_server_names_the_handshake(settings, relay, trust_test_ca):
    server = relay()
    check = check_smtp(settings(SMTP_PORT=str(server.port), SMTP_SECURITY="tls"), timeout=2)
    assert check.status == "fail"
    assert check.summary.startswith("TLS handshake failed: ")


def test_starttls_asked_but_not_offered(settings, relay):
    server = relay()
    check = check_smtp(settings(SMTP_PORT=str(server.port), SMTP_SECURITY="starttls"))
    assert check.status == "fail"
    assert check.summary.startswith(
        "the relay does not offer STARTTLS although SMTP_SECURITY=starttls"
    )


def test_a_login_where_the_relay_offers_no_auth(settings, relay):
    server = relay()
    config = settings(SMTP_PORT=str(server.port), SMTP_USERNAME="u", SMTP_PASSWORD="p")
    check = check_smtp(config)
    assert check.status == "fail"
    assert check.summary == (
        "the relay offers no AUTH to log in with SMTP_USERNAME (many offer it only after STARTTLS)"
    )


def test_a_relay_refusing_us_at_connect(settings):
    server = RefusingServer("554 5.7.1 <b>no service</b> for your address")
    try:
        check = check_smtp(settings(SMTP_PORT=str(server.port)))
    finally:
        server.close()
    assert check.status == "fail"
    assert check.summary == (
        f"127.0.0.1:{server.port} refused us at connect: "
        "554 5.7.1 <b>no service</b> for your address"
    )


@pytest.mark.parametrize("security", ["none", "tls"])
def test_a_silent_server_is_a_timeout_with_the_stage_named(settings, security, trust_test_ca):
    server = SilentServer(free_port())
    try:
        check = check_smtp(settings(SMTP_PORT=str(server.port), SMTP_SECURITY=security), 0.5)
    finally:
        server.close()
    stage = "greeting" if security == "none" else "TLS handshake"
    assert check.status == "fail"
    assert check.summary == f"no answer from 127.0.0.1:{server.port} within 0.5 s at {stage}"


def test_nothing_listening_is_a_clear_line(settings):
    port = free_port()
    check = check_smtp(settings(SMTP_PORT=str(port)))
    assert check.status == "fail"
    assert check.summary == (
        f"cannot connect to 127.0.0.1:{port}: connection refused (nothing listens there)"
    )
