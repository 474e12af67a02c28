"""The bounce address's domain takes mail: MX, the A fallback, or nothing at all."""

from __future__ import annotations

from newsletter.doctor.bounces import check_bounces


def test_an_mx_for_the_bounce_address(settings, zone, lookup):
    zone.mx("bounce.example.com", "mx2.example.com", 20)
    zone.mx("bounce.example.com", "mx1.example.com", 10)
    check = check_bounces(settings(BOUNCE_ADDRESS="b@bounce.example.com"), lookup)
    assert check.status == "ok", check
    assert check.summary == (
        "bounces to b@bounce.example.com arrive at bounce.example.com's MX "
        "(10 mx1.example.com, 20 mx2.example.com)"
    )
    assert check.detail == ()


def test_without_a_bounce_address_mail_from_takes_the_bounces(settings, zone, lookup):
    zone.mx("example.com", "mx.example.com")
    check = check_bounces(settings(), lookup)
    assert check.status == "ok"
    assert check.summary.startswith("bounces to tips@example.com arrive at example.com's MX")
    assert check.detail[0].startswith("BOUNCE_ADDRESS is not set: bounces come back to")


def test_the_a_record_fallback(settings, zone, lookup):
    zone.a("example.com", "192.0.2.10")
    check = check_bounces(settings(), lookup)
    assert check.status == "ok"
    assert check.summary == (
        "example.com has no MX; bounces to tips@example.com go to its A/AAAA record (implicit MX)"
    )


def test_no_mx_and_no_address(settings, zone, lookup):
    zone.txt("example.com", "v=spf1 -all")
    check = check_bounces(settings(), lookup)
    assert check.status == "fail"
    assert check.summary == (
        "example.com has no MX and no address: bounces to tips@example.com cannot arrive"
    )


def test_a_null_mx(settings, zone, lookup):
    zone.mx("example.com", ".", 0)
    check = check_bounces(settings(), lookup)
    assert check.status == "fail"
    assert check.summary == (
        "example.com publishes a null MX (it takes no mail): bounces to tips@example.com are lost"
    )


def test_a_domain_that_does_not_exist(settings, zone, lookup):
    check = check_bounces(settings(BOUNCE_ADDRESS="b@nowhere.example.com"), lookup)
    assert check.status == "fail"
    assert check.summary == (
        "nowhere.example.com does not exist in DNS (NXDOMAIN): bounces to b@nowhere.example.com "
        "are lost"
    )
