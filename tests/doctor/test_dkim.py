"""DKIM against a real DNS server: the selector's key is the public half of ours."""

from __future__ import annotations

from newsletter.doctor.dkim import check_dkim
from tests.doctor.world import public_record

SELECTOR = "tips._domainkey.example.com"


def dkim(settings, pem, **env):
    return settings(DKIM_DOMAIN="example.com", DKIM_SELECTOR="tips", DKIM_PRIVATE_KEY=pem, **env)


def test_dkim_off_is_a_warning(settings, zone, lookup):
    check = check_dkim(settings(), lookup)
    assert check.status == "warn"
    assert check.summary == "DKIM signing is off: Gmail and Yahoo want DKIM from bulk senders"
    assert zone.queries == []


def test_the_published_key_matches(settings, zone, lookup, dkim_keys, dkim_pem):
    zone.txt(SELECTOR, public_record(dkim_keys[0]))
    check = check_dkim(dkim(settings, dkim_pem), lookup)
    assert check.status == "ok", check
    assert check.summary == (
        "d=example.com s=tips: the published rsa key (2048 bits) matches DKIM_PRIVATE_KEY"
    )


def test_another_key_published_is_a_mismatch(settings, zone, lookup, dkim_keys, dkim_pem):
    zone.txt(SELECTOR, public_record(dkim_keys[1]))
    check = check_dkim(dkim(settings, dkim_pem), lookup)
    assert check.status == "fail"
    assert check.summary == (
        f"the key published at {SELECTOR} does not match DKIM_PRIVATE_KEY: receivers will "
        "reject every signature"
    )


def test_no_key_published(settings, zone, lookup, dkim_pem):
    zone.txt("example.com", "v=spf1 -all")
    check = check_dkim(dkim(settings, dkim_pem), lookup)
    assert check.status == "fail"
    assert check.summary == f"no DKIM key published at {SELECTOR}"
    assert check.detail == (
        f'publish TXT "v=DKIM1; k=rsa; p=<the public key, base64>" at {SELECTOR}',
    )


def test_a_revoked_key(settings, zone, lookup, dkim_pem):
    zone.txt(SELECTOR, "v=DKIM1; k=rsa; p=")
    check = check_dkim(dkim(settings, dkim_pem), lookup)
    assert check.status == "fail"
    assert check.summary == f"the key at {SELECTOR} is revoked (empty p=)"


def test_a_record_that_is_no_key(settings, zone, lookup, dkim_pem):
    zone.txt(SELECTOR, "v=DKIM1; k=rsa; p=bm90IGEga2V5")
    check = check_dkim(dkim(settings, dkim_pem), lookup)
    assert check.status == "fail"
    assert check.summary.startswith(f"the record at {SELECTOR} is not a usable key: ")


def test_two_records_at_the_selector(settings, zone, lookup, dkim_keys, dkim_pem):
    zone.txt(SELECTOR, public_record(dkim_keys[0]), public_record(dkim_keys[1]))
    check = check_dkim(dkim(settings, dkim_pem), lookup)
    assert check.status == "fail"
    assert check.summary == f"2 TXT records at {SELECTOR}; receivers may pick any: publish one"


def test_a_testing_key_is_a_warning(settings, zone, lookup, dkim_keys, dkim_pem):
    zone.txt(SELECTOR, public_record(dkim_keys[0]) + "; t=y")
    check = check_dkim(dkim(settings, dkim_pem), lookup)
    assert check.status == "warn"
    assert check.summary.endswith("matches DKIM_PRIVATE_KEY, but t=y marks it as testing")
