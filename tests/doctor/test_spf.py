"""SPF against a real DNS server: which term authorises the relay, and every broken record."""

from __future__ import annotations

from newsletter.doctor import Lookup, run_checks
from newsletter.doctor.spf import check_spf

RELAY = "relay.example.net"


def relay_at(zone, *addresses: str) -> None:
    zone.a(RELAY, *[a for a in addresses if ":" not in a])
    zone.aaaa(RELAY, *[a for a in addresses if ":" in a])


def test_an_ip4_term_authorises_the_relay(settings, zone, lookup):
    relay_at(zone, "192.0.2.25")
    zone.txt("example.com", "google-site-verification=abc", "v=spf1 ip4:192.0.2.0/24 -all")
    check = check_spf(settings(SMTP_HOST=RELAY), lookup)
    assert check.status == "ok", check
    assert check.summary == (
        "example.com authorises the relay 192.0.2.25 (ip4:192.0.2.0/24); ends -all (others fail)"
    )
    assert "example.com: v=spf1 ip4:192.0.2.0/24 -all" in check.detail
    assert "192.0.2.25: pass by ip4:192.0.2.0/24 (0 of 10 DNS lookups)" in check.detail


def test_a_relay_not_in_the_record_fails(settings, zone, lookup):
    relay_at(zone, "192.0.2.25")
    zone.txt("example.com", "v=spf1 ip4:198.51.100.7 ~all")
    check = check_spf(settings(SMTP_HOST=RELAY), lookup)
    assert check.status == "fail"
    assert check.summary.startswith(
        f"example.com does not authorise the relay {RELAY} (192.0.2.25 gets softfail); add it"
    )


def test_every_address_of_the_relay_must_be_authorised(settings, zone, lookup):
    relay_at(zone, "192.0.2.25", "2001:db8::25")
    zone.txt("example.com", "v=spf1 ip4:192.0.2.25 -all")
    check = check_spf(settings(SMTP_HOST=RELAY), lookup)
    assert check.status == "fail"
    assert "(2001:db8::25 gets fail)" in check.summary


def test_a_relay_on_this_machine_not_listed_is_only_a_warning(settings, zone, lookup):
    zone.txt("example.com", "v=spf1 ip4:198.51.100.7 -all")
    check = check_spf(settings(SMTP_HOST="127.0.0.1"), lookup)
    assert check.status == "warn"
    assert "it is on this machine or network" in check.summary


def test_no_record_says_what_to_publish(settings, zone, lookup):
    relay_at(zone, "192.0.2.25")
    zone.txt("example.com", "some other text")
    check = check_spf(settings(SMTP_HOST=RELAY), lookup)
    assert check.status == "fail"
    assert check.summary == (
        'example.com has no SPF record; publish TXT "v=spf1 ip4:192.0.2.25 -all" '
        "(or the include: your relay documents)"
    )


def test_a_domain_that_does_not_exist(settings, zone, lookup):
    relay_at(zone, "192.0.2.25")
    check = check_spf(settings(SMTP_HOST=RELAY), lookup)
    assert check.status == "fail"
    assert check.summary == "example.com does not exist in DNS (NXDOMAIN)"


def test_two_records_are_a_permanent_error(settings, zone, lookup):
    relay_at(zone, "192.0.2.25")
    zone.txt("example.com", "v=spf1 ip4:192.0.2.25 -all", "v=spf1 include:mail.example.net -all")
    check = check_spf(settings(SMTP_HOST=RELAY), lookup)
    assert check.status == "fail"
    assert check.summary == "example.com has 2 SPF records; merge them into one"


def test_an_include_chain_with_a_and_mx(settings, zone, lookup):
    relay_at(zone, "192.0.2.25")
    zone.txt("example.com", "v=spf1 mx include:_spf.example.net ~all")
    zone.mx("example.com", "mx.example.com")
    zone.a("mx.example.com", "203.0.113.9")
    zone.txt("_spf.example.net", "v=spf1 include:_out.example.net -all")
    zone.txt("_out.example.net", f"v=spf1 a:{RELAY}/28 -all")
    check = check_spf(settings(SMTP_HOST=RELAY), lookup)
    assert check.status == "ok", check
    assert check.summary == (
        "example.com authorises the relay 192.0.2.25 (include:_spf.example.net → "
        f"include:_out.example.net → a:{RELAY}/28); ends ~all (others soft-fail)"
    )
    assert check.detail[-1].endswith("(4 of 10 DNS lookups)")


def test_more_than_ten_lookups_is_a_permanent_error(settings, zone, lookup):
    relay_at(zone, "192.0.2.25")
    zone.txt("example.com", "v=spf1 include:n1.example.net -all")
    for n in range(1, 12):
        zone.txt(f"n{n}.example.net", f"v=spf1 include:n{n + 1}.example.net -all")
    zone.txt("n12.example.net", "v=spf1 ip4:192.0.2.25 -all")
    check = check_spf(settings(SMTP_HOST=RELAY), lookup)
    assert check.status == "fail"
    assert check.summary.startswith("example.com: SPF permerror: more than 10 DNS lookups")


def test_redirect_and_an_ip6_relay(settings, zone, lookup):
    relay_at(zone, "2001:db8:5::25")
    zone.txt("example.com", "v=spf1 redirect=_spf.example.com")
    zone.txt("_spf.example.com", "v=spf1 ip6:2001:db8:5::/48 -all")
    check = check_spf(settings(SMTP_HOST=RELAY), lookup)
    assert check.status == "ok", check
    assert check.summary == (
        "example.com authorises the relay 2001:db8:5::25 (redirect=_spf.example.com → "
        "ip6:2001:db8:5::/48); ends -all (others fail) by redirect=_spf.example.com"
    )


def test_plus_all_lets_anyone_send(settings, zone, lookup):
    relay_at(zone, "192.0.2.25")
    zone.txt("example.com", "v=spf1 ip4:192.0.2.25 +all")
    check = check_spf(settings(SMTP_HOST=RELAY), lookup)
    assert check.status == "fail"
    assert check.summary == "example.com ends with +all: anyone may send as example.com"


def test_a_neutral_ending_is_a_warning(settings, zone, lookup):
    relay_at(zone, "192.0.2.25")
    zone.txt("example.com", "v=spf1 ip4:192.0.2.25 ?all")
    check = check_spf(settings(SMTP_HOST=RELAY), lookup)
    assert check.status == "warn"
    assert check.summary.endswith("ends ?all (others neutral)")


def test_a_broken_term_is_a_permanent_error(settings, zone, lookup):
    relay_at(zone, "192.0.2.25")
    zone.txt("example.com", "v=spf1 ip4:192.0.2.300 -all")
    check = check_spf(settings(SMTP_HOST=RELAY), lookup)
    assert check.status == "fail"
    assert check.summary == (
        "example.com: SPF permerror: 'ip4:192.0.2.300' is not a valid IPv4 network"
    )


def test_with_a_bounce_address_the_envelope_domain_decides(settings, zone, lookup):
    relay_at(zone, "192.0.2.25")
    zone.txt("bounce.example.com", "v=spf1 ip4:192.0.2.25 -all")
    zone.txt("example.com", "v=spf1 -all")
    check = check_spf(settings(SMTP_HOST=RELAY, BOUNCE_ADDRESS="b@bounce.example.com"), lookup)
    assert check.status == "warn"  # the From domain's record alone would refuse the relay
    assert check.summary.startswith("bounce.example.com authorises the relay 192.0.2.25")
    assert any(line.startswith("From: example.com does not authorise") for line in check.detail)


def test_a_dns_server_that_never_answers_is_a_warning_not_a_traceback(settings, silent_dns):
    dead = Lookup.for_config(None, ("127.0.0.1", silent_dns.port), timeout=0.5)
    checks = {c.name: c for c in run_checks(settings(SMTP_HOST=RELAY, SMTP_PORT="1"), dead, 1)}
    # DKIM is off in these settings, so it has nothing to look up; the others all wait on DNS.
    assert [checks[name].status for name in ("spf", "dmarc", "bounces")] == ["warn"] * 3
    assert checks["spf"].summary == (
        f"DNS lookup could not be made: no answer from {silent_dns.address} within 0.5 s "
        f"(asking A {RELAY})"
    )
    assert checks["bounces"].summary == (
        f"DNS lookup could not be made: no answer from {silent_dns.address} within 0.5 s "
        "(not asked again after the first timeout)"
    )


def test_the_mx_term_names_the_exchange_that_matched(settings, zone, lookup):
    relay_at(zone, "192.0.2.25")
    zone.txt("example.com", "v=spf1 mx:example.com/24 -all")
    zone.mx("example.com", "mx1.example.com", 10)
    zone.mx("example.com", "mx2.example.com", 20)
    zone.a("mx1.example.com", "203.0.113.9")
    zone.a("mx2.example.com", "192.0.2.1")
    check = check_spf(settings(SMTP_HOST=RELAY), lookup)
    assert check.status == "ok", check
    assert "(mx:example.com/24 (mx2.example.com))" in check.summary


def test_terms_naming_missing_domains_hit_the_void_lookup_limit(settings, zone, lookup):
    relay_at(zone, "192.0.2.25")
    zone.txt(
        "example.com", "v=spf1 a:gone1.example.com a:gone2.example.com a:gone3.example.com -all"
    )
    check = check_spf(settings(SMTP_HOST=RELAY), lookup)
    assert check.status == "fail"
    assert check.summary.startswith("example.com: SPF permerror: more than 2 lookups found nothing")
