"""DNS queries for the checks through dnspython, with one clear error for a lookup not made."""

from __future__ import annotations

import ipaddress
from typing import Any

import dns.exception
import dns.resolver

from newsletter.config import Settings

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


class DnsUnavailable(Exception):
    """No answer could be had (timeout, failing server): the records are unknown, not absent."""


class Lookup:
    """The DNS answers the checks need; a name without records answers empty, NXDOMAIN None."""

    def __init__(
        self, resolver: dns.resolver.Resolver | None, where: str, unavailable: str = ""
    ) -> None:
        self._resolver = resolver
        self.where = where
        # Once a server has timed out, the next question would too: fail fast instead of
        # making the operator wait out one timeout per record.
        self._broken = unavailable
        self._answers: dict[tuple[str, str], list[Any] | None] = {}

    @property
    def unavailable(self) -> str:
        """Say why no server can be asked at all ("" when one can)."""
        return "" if self._resolver is not None else (self._broken or "no DNS server to ask")

    @classmethod
    def for_config(
        cls,
        settings: Settings | None,
        nameserver: tuple[str, int] | None = None,
        timeout: float = 3.0,
    ) -> Lookup:
        """Ask ``nameserver``, else DNS_NAMESERVER, else the resolvers this machine uses."""
        target = nameserver or (settings.dns_nameserver if settings else None)
        if target:
            host, port = target
            resolver = dns.resolver.Resolver(configure=False)
            resolver.nameservers = [host]
            resolver.port = port
            where = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
        elif settings is not None and settings.testing:
            # A test run must never reach a real resolver: it names its own server or asks none.
            return cls(None, "no server", "NEWSLETTER_ENV=testing and no DNS_NAMESERVER set")
        else:
            try:
                resolver = dns.resolver.Resolver()
            except dns.resolver.NoResolverConfiguration:
                return cls(
                    None,
                    "no server",
                    "this machine has no DNS resolver configured; set DNS_NAMESERVER",
                )
            where = "the system resolver (" + ", ".join(map(str, resolver.nameservers)) + ")"
        resolver.timeout = resolver.lifetime = timeout
        return cls(resolver, where)

    def _query(self, name: str, rdtype: str) -> list[Any] | None:
        key = (name.lower().rstrip("."), rdtype)
        if key in self._answers:
            return self._answers[key]
        if self._resolver is None:
            raise DnsUnavailable(self._broken or "no DNS server to ask")
        if self._broken:
            raise DnsUnavailable(
                f"no answer from {self.where} within {self._resolver.lifetime:g} s "
                "(not asked again after the first timeout)"
            )
        try:
            answer = self._resolver.resolve(
                key[0] + ".", rdtype, search=False, raise_on_no_answer=False
            )
            records: list[Any] | None = list(answer.rrset or [])
        except dns.resolver.NXDOMAIN:
            records = None
        except dns.resolver.NoAnswer:
            records = []
        except dns.exception.Timeout:
            self._broken = f"{rdtype} {key[0]}"
            raise DnsUnavailable(
                f"no answer from {self.where} within {self._resolver.lifetime:g} s "
                f"(asking {self._broken})"
            ) from None
        except dns.resolver.NoNameservers:
            raise DnsUnavailable(
                f"{self.where} could not answer {rdtype} {key[0]} (SERVFAIL or refused)"
            ) from None
        except dns.exception.DNSException as exc:
            raise DnsUnavailable(f"cannot look up {rdtype} {key[0]}: {exc}") from None
        self._answers[key] = records
        return records

    def txt(self, name: str) -> list[str] | None:
        """Return each TXT record at ``name`` with its strings joined (None: no such name)."""
        records = self._query(name, "TXT")
        if records is None:
            return None
        return [b"".join(r.strings).decode("utf-8", "replace") for r in records]

    def ipv4(self, name: str) -> list[IPAddress] | None:
        """Return the A records of ``name`` (None: no such name)."""
        records = self._query(name, "A")
        return None if records is None else [ipaddress.ip_address(r.address) for r in records]

    def ipv6(self, name: str) -> list[IPAddress] | None:
        """Return the AAAA records of ``name`` (None: no such name)."""
        records = self._query(name, "AAAA")
        return None if records is None else [ipaddress.ip_address(r.address) for r in records]

    def addresses(self, name: str) -> list[IPAddress] | None:
        """Return the A and AAAA records of ``name`` (None: no such name)."""
        four = self.ipv4(name)
        if four is None:
            return None
        return four + (self.ipv6(name) or [])

    def mx(self, name: str) -> list[tuple[int, str]] | None:
        """Return ``(preference, host)`` of each MX record, lowest first (None: no such name)."""
        records = self._query(name, "MX")
        if records is None:
            return None
        return sorted(
            (int(r.preference), r.exchange.to_text(omit_final_dot=True).lower()) for r in records
        )
