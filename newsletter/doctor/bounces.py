"""The bounce address: its domain takes mail, so refusals that arrive later can reach us."""

from __future__ import annotations

from newsletter.config import Settings
from newsletter.doctor.lookup import Lookup
from newsletter.doctor.names import domain_of, envelope_sender
from newsletter.doctor.report import Check, Status


def check_bounces(settings: Settings, lookup: Lookup) -> Check:
    """Check that the envelope sender's domain has an MX (or an address) to take bounces."""
    address = envelope_sender(settings)
    domain = domain_of(address)
    detail = []
    if not settings.bounce_address:
        detail.append(
            f"BOUNCE_ADDRESS is not set: bounces come back to {address} and are matched by "
            "the Message-ID they quote"
        )
    exchanges = lookup.mx(domain)
    if exchanges is None:
        return Check(
            "bounces",
            Status.FAIL,
            f"{domain} does not exist in DNS (NXDOMAIN): bounces to {address} are lost",
            tuple(detail),
        )
    hosts = [host for _pref, host in exchanges]
    if hosts and all(host in (".", "") for host in hosts):
        return Check(
            "bounces",
            Status.FAIL,
            f"{domain} publishes a null MX (it takes no mail): bounces to {address} are lost",
            tuple(detail),
        )
    if hosts:
        shown = ", ".join(f"{pref} {host}" for pref, host in exchanges)
        return Check(
            "bounces",
            Status.OK,
            f"bounces to {address} arrive at {domain}'s MX ({shown})",
            tuple(detail),
        )
    if lookup.addresses(domain):
        detail.append(f"publish an MX record for {domain} to say so explicitly")
        return Check(
            "bounces",
            Status.OK,
            f"{domain} has no MX; bounces to {address} go to its A/AAAA record (implicit MX)",
            tuple(detail),
        )
    return Check(
        "bounces",
        Status.FAIL,
        f"{domain} has no MX and no address: bounces to {address} cannot arrive",
        (*detail, f"publish an MX record for {domain} pointing at a server that takes its mail"),
    )
