"""DMARC against a real DNS server: a policy is published and our mail aligns with From."""

from __future__ import annotations

from newsletter.doctor.dmarc import check_dmarc


def test_a_policy_aligned_by_spf_on_the_from_domain(settings, zone, lookup):
    zone.txt("_dmarc.example.com", "v=DMARC1; p=reject; rua=mailto:d@example.com")
    check = check_dmarc(settings(), lookup)
    assert check.status == "ok", check
    assert check.summary == (
        "p=reject at _dmarc.example.com; From example.com aligned by SPF on example.com (relaxed)"
    )


def test_no_record_says_what_to_publish(settings, zone, lookup):
    zone.txt("example.com", "v=spf1 -all")
    check = check_dmarc(settings(MAIL_FROM="Tips <tips@news.example.com>"), lookup)
    assert check.status == "fail"
    assert check.summary == (
        "no DMARC record at _dmarc.news.example.com or _dmarc.example.com: "
        "Gmail and Yahoo require one from bulk senders"
    )
    assert check.detail == (
        'start with TXT "v=DMARC1; p=none; rua=mailto:dmarc@example.com" at _dmarc.example.com',
    )


def test_a_subdomain_falls_back_to_the_organisational_domain_and_its_sp(settings, zone, lookup):
    zone.txt("_dmarc.example.co.uk", "v=DMARC1; p=reject; sp=quarantine")
    config = settings(MAIL_FROM="Tips <tips@news.example.co.uk>", DKIM_DOMAIN=None)
    check = check_dmarc(config, lookup)
    assert check.status == "ok", check
    assert check.summary == (
        "p=quarantine at _dmarc.example.co.uk; From news.example.co.uk aligned by "
        "SPF on news.example.co.uk (relaxed)"
    )


def test_misaligned_envelope_and_dkim_fail(settings, zone, lookup, dkim_pem):
    zone.txt("_dmarc.example.com", "v=DMARC1; p=quarantine")
    config = settings(
        BOUNCE_ADDRESS="bounces@mailer.example.net",
        DKIM_DOMAIN="example.net",
        DKIM_SELECTOR="s1",
        DKIM_PRIVATE_KEY=dkim_pem,
    )
    check = check_dmarc(config, lookup)
    assert check.status == "fail"
    assert check.summary == (
        "p=quarantine, but neither DKIM d=example.net nor the envelope domain "
        "mailer.example.net aligns with From example.com: every issue fails DMARC"
    )


def test_strict_spf_alignment_needs_the_exact_domain(settings, zone, lookup):
    zone.txt("_dmarc.example.com", "v=DMARC1; p=none; aspf=s")
    config = settings(BOUNCE_ADDRESS="bounces@mail.example.com")
    check = check_dmarc(config, lookup)
    assert check.status == "fail"
    assert check.summary.startswith(
        "p=none, but without DKIM, the envelope domain mail.example.com does not align"
    )


def test_dkim_alignment_is_enough(settings, zone, lookup, dkim_pem):
    zone.txt("_dmarc.example.com", "v=DMARC1; p=none")
    config = settings(
        BOUNCE_ADDRESS="bounces@mailer.example.net",
        DKIM_DOMAIN="mail.example.com",
        DKIM_SELECTOR="s1",
        DKIM_PRIVATE_KEY=dkim_pem,
    )
    check = check_dmarc(config, lookup)
    assert check.status == "ok", check
    assert check.summary.endswith("aligned by DKIM d=mail.example.com (relaxed)")
    assert "p=none only reports: raise it to quarantine once the reports look right" in (
        check.detail
    )


def test_a_record_without_a_valid_policy(settings, zone, lookup):
    zone.txt("_dmarc.example.com", "v=DMARC1; p=maybe")
    check = check_dmarc(settings(), lookup)
    assert check.status == "fail"
    assert check.summary == (
        "the record at _dmarc.example.com has no valid p= (none, quarantine or reject)"
    )


def test_two_records_count_as_none(settings, zone, lookup):
    zone.txt("_dmarc.example.com", "v=DMARC1; p=none", "v=DMARC1; p=reject")
    check = check_dmarc(settings(), lookup)
    assert check.status == "fail"
    assert check.summary == (
        "2 DMARC records at _dmarc.example.com: receivers ignore them all; keep one"
    )
