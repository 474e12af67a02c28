"""Where a webhook may be posted: public addresses only, unless an operator allows a host.

A URL's host is resolved and every address it resolves to is checked, so a name pointing at
127.0.0.1 or a cloud's metadata service is refused like the address itself. The check runs at
registration and again at connect time, and the connection goes to the address that was checked
(``post.py``), so a name that changes its answer in between cannot slip through.
"""

from __future__ import annotations

import ipaddress
import socket
import threading
from collections.abc import Collection
from urllib.parse import urlsplit

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

# Cloud metadata services: never allowed, not even through WEBHOOK_ALLOW_HOSTS.
METADATA_HOSTS = frozenset({"metadata.google.internal", "metadata.goog", "metadata"})
METADATA_ADDRESSES = frozenset(
    {
        ipaddress.ip_address("169.254.169.254"),  # AWS, GCP, Azure, OpenStack …
        ipaddress.ip_address("169.254.170.2"),  # AWS ECS task metadata
        ipaddress.ip_address("100.100.100.200"),  # Alibaba Cloud
        ipaddress.ip_address("fd00:ec2::254"),  # AWS over IPv6
    }
)


# An editor's page waits no longer than this for the URL's host to resolve.
REGISTRATION_LOOKUP = 10.0


class Refused(Exception):
    """The URL's host is not one a webhook may be posted to; the message says why."""


def normalise_host(host: str) -> str:
    """Return a host as compared with the allow-list: lower case, no brackets, IPs canonical."""
    host = host.strip().strip("[]").rstrip(".").lower()
    try:
        return str(ipaddress.ip_address(host))
    except ValueError:
        return host


# IPv6 forms that carry an IPv4 address which cannot be read back reliably, or that are
# deprecated: refused whatever they carry. The NAT64 local-use prefix may embed the IPv4
# address at any of several prefix lengths (RFC 6052), and Teredo relays through servers of
# its own; IPv4-compatible addresses (::a.b.c.d) were deprecated long ago.
OPAQUE_IPV4_CARRIERS = (
    ipaddress.ip_network("64:ff9b:1::/48"),  # NAT64, local use
    ipaddress.ip_network("2001::/32"),  # Teredo
    ipaddress.ip_network("::/96"),  # IPv4-compatible
)
NAT64_WELL_KNOWN = ipaddress.ip_network("64:ff9b::/96")


def embedded_ipv4(address: IPAddress) -> ipaddress.IPv4Address | None:
    """Return the IPv4 address an IPv6 address stands for (mapped, 6to4, NAT64), if any."""
    if isinstance(address, ipaddress.IPv4Address):
        return None
    if address.ipv4_mapped is not None:
        return address.ipv4_mapped
    if address.sixtofour is not None:
        return address.sixtofour
    if address in NAT64_WELL_KNOWN:
        return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    return None


def _internal(address: IPAddress) -> bool:
    return (
        address in METADATA_ADDRESSES
        or address.is_loopback
        or address.is_private
        or address.is_link_local
        or address.is_multicast
        or address.is_reserved
        or address.is_unspecified
        or not address.is_global
    )


def is_metadata(address: IPAddress) -> bool:
    """Say whether an address is a cloud metadata service, also when wrapped in IPv6."""
    return address in METADATA_ADDRESSES or embedded_ipv4(address) in METADATA_ADDRESSES


def forbidden(address: IPAddress) -> bool:
    """Say whether an address is internal: loopback, private, link-local, metadata …

    An IPv6 address that carries an IPv4 one (IPv4-mapped, 6to4, NAT64's well-known prefix)
    is judged by the IPv4 address it leads to, so ``2002:7f00:1::`` is refused as 127.0.0.1
    is, while NAT64 to a public address is allowed.
    """
    if isinstance(address, ipaddress.IPv6Address) and any(
        address in carrier for carrier in OPAQUE_IPV4_CARRIERS
    ):
        return True
    inner = embedded_ipv4(address)
    if inner is not None:
        # 6to4 is itself a global IPv6 range, NAT64's prefix is not global in every Python:
        # the IPv4 address decides.
        return _internal(inner)
    return _internal(address)


def resolve(host: str, port: int, timeout: float | None = None) -> list[IPAddress]:
    """Return every address ``host`` resolves to, in the resolver's order; raise OSError.

    Past ``timeout`` seconds, raise ``TimeoutError`` (the lookup itself may still be running).
    """
    try:
        return [ipaddress.ip_address(host)]  # a literal needs no lookup, nor a thread
    except ValueError:
        pass
    if timeout is None:
        return _lookup(host, port)
    # getaddrinfo takes no timeout and cannot be interrupted: it runs in a thread of its own so
    # that the caller can stop waiting; the thread ends when the resolver gives up by itself.
    outcome: list[list[IPAddress] | Exception] = []
    done = threading.Event()

    def look_up() -> None:
        try:
            outcome.append(_lookup(host, port))
        except Exception as exc:
            outcome.append(exc)
        done.set()

    threading.Thread(target=look_up, name=f"resolve {host}", daemon=True).start()
    if not done.wait(timeout):
        raise TimeoutError(f"{host} did not resolve within {timeout:.1f} s")
    if isinstance(outcome[0], Exception):
        raise outcome[0]
    return outcome[0]


def _lookup(host: str, port: int) -> list[IPAddress]:
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    found: list[IPAddress] = []
    for _family, _type, _proto, _name, sockaddr in infos:
        address = ipaddress.ip_address(str(sockaddr[0]).split("%", 1)[0])
        if address not in found:
            found.append(address)
    if not found:
        raise OSError(f"{host} has no address")
    return found


def target(url: str) -> tuple[str, int]:
    """Return the URL's host and port (the scheme's default when none is given)."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise Refused("Enter an http:// or https:// URL.")
    try:
        port = parts.port
    except ValueError:
        raise Refused("The URL's port is not a number from 1 to 65535.") from None
    return parts.hostname, port or (443 if parts.scheme == "https" else 80)


def checked_addresses(
    url: str, allow: Collection[str] = (), timeout: float | None = None
) -> tuple[str, int, list[IPAddress]]:
    """Resolve the URL's host once and check every address; return host, port and addresses.

    Raise ``Refused`` for a host that resolves to an internal address (unless the host, as
    written in the URL, is on ``allow``) or to a metadata service, and ``OSError`` when it
    does not resolve (``TimeoutError`` when it does not within ``timeout`` seconds).
    """
    host, port = target(url)
    name = normalise_host(host)
    if name in METADATA_HOSTS:
        raise Refused(f"{host} is a cloud metadata service; webhooks may not be sent there.")
    addresses = resolve(host, port, timeout)
    allowed = name in {normalise_host(h) for h in allow}
    for address in addresses:
        if is_metadata(address) or (not allowed and forbidden(address)):
            raise Refused(
                f"{host} is an internal address ({address}): loopback, private, link-local and "
                "metadata addresses are refused. An operator can allow an intranet host with "
                "WEBHOOK_ALLOW_HOSTS."
            )
    return host, port, addresses


def check_registration(url: str, allow: Collection[str] = ()) -> None:
    """Refuse a URL a webhook may not be registered for; the message is for the editor."""
    if len(url) > 500 or any(ord(c) <= 32 for c in url):
        raise Refused("Enter an http:// or https:// URL (at most 500 characters, no spaces).")
    try:
        checked_addresses(url, allow, REGISTRATION_LOOKUP)
    except OSError:
        raise Refused(f"{target(url)[0]} does not resolve to an address.") from None
