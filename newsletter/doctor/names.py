"""The addresses and domains the checks are about, read from the settings."""

from __future__ import annotations

import functools
import ipaddress
from email.utils import parseaddr

import idna
from publicsuffixlist import PublicSuffixList

from newsletter.config import Settings
from newsletter.doctor.lookup import IPAddress


def mail_from_address(settings: Settings) -> str:
    """Return the bare address of MAIL_FROM."""
    return parseaddr(settings.mail_from)[1]


def envelope_sender(settings: Settings) -> str:
    """Return the envelope sender of issue copies: BOUNCE_ADDRESS, else MAIL_FROM's address."""
    return settings.bounce_address or mail_from_address(settings)


def domain_of(address: str) -> str:
    """Return the domain of ``address`` as DNS spells it (lower case, IDNA)."""
    domain = address.rpartition("@")[2].strip().rstrip(".").lower()
    try:
        return idna.encode(domain, uts46=True).decode("ascii")
    except (idna.IDNAError, UnicodeError):
        return domain


def is_local_host(host: str) -> bool:
    """Say whether ``host`` names this machine (localhost, a loopback address)."""
    host = host.strip().strip("[]").rstrip(".").lower()
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


# Addresses that never face the internet. Not ipaddress's is_private, which also counts the
# documentation ranges (192.0.2.0/24, 2001:db8::/32) that examples and tests use as public.
INTERNAL = tuple(
    ipaddress.ip_network(n)
    for n in (
        "127.0.0.0/8",
        "10.0.0.0/8",
        "172.16.0.0/12",
        "192.168.0.0/16",
        "100.64.0.0/10",
        "169.254.0.0/16",
        "::1/128",
        "fc00::/7",
        "fe80::/10",
    )
)


def is_internal(address: IPAddress) -> bool:
    """Say whether ``address`` is one the internet never sees mail from (loopback, private)."""
    return any(address in network for network in INTERNAL if network.version == address.version)


@functools.cache
def _suffixes() -> PublicSuffixList:
    # Parsing the bundled list takes a moment: once per process. It never fetches anything.
    return PublicSuffixList()


def organisational_domain(domain: str) -> str:
    """Return the registered domain DMARC aligns on (mail.example.co.uk -> example.co.uk)."""
    domain = domain.lower().rstrip(".")
    return _suffixes().privatesuffix(domain) or domain


def aligned(domain: str, from_domain: str, mode: str) -> bool:
    """Say whether ``domain`` aligns with the From domain: ``s`` exactly, ``r`` by org domain."""
    if mode == "s":
        return domain == from_domain
    return organisational_domain(domain) == organisational_domain(from_domain)
