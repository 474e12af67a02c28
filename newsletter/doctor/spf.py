"""SPF (RFC 7208): find a domain's record and evaluate it for the relay's addresses.

Our own evaluator rather than pyspf (last released 2020, with DNS code of its own that cannot
be pointed at DNS_NAMESERVER) or checkdmarc (a large tree that does its own lookups): it asks
through the doctor's Lookup, counts the 10 DNS lookups and 2 void lookups receivers allow,
and says which term decided. Macros (%{i} …) are not expanded; a term using one is skipped
and said so.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass, field
from typing import Any

from newsletter.config import Settings
from newsletter.doctor.lookup import IPAddress, Lookup
from newsletter.doctor.names import (
    domain_of,
    envelope_sender,
    is_internal,
    is_local_host,
    mail_from_address,
)
from newsletter.doctor.report import Check, Status, worst

MAX_LOOKUPS = 10
MAX_VOID_LOOKUPS = 2
MAX_MX_NAMES = 10
QUALIFIERS = {"+": "pass", "-": "fail", "~": "softfail", "?": "neutral"}
ALL_MEANS = {
    "-all": "-all (others fail)",
    "~all": "~all (others soft-fail)",
    "?all": "?all (others neutral)",
    "+all": "+all (anyone may send)",
}
MECHANISM = re.compile(
    r"([+\-~?]?)(all|include|a|mx|ptr|ip4|ip6|exists)(?::([^/]+?))?(?:/(\d+))?(?://(\d+))?",
    re.IGNORECASE,
)
MODIFIER = re.compile(r"([a-z][a-z0-9_.\-]*)=(.*)", re.IGNORECASE)


class SpfPermError(Exception):
    """The record is broken: receivers treat the domain as having no usable SPF (permerror)."""


@dataclass
class Evaluation:
    """One check_host() run for one address: the result, the deciding term, what it cost."""

    ip: IPAddress
    lookup: Lookup
    lookups: int = 0
    void: int = 0
    notes: list[str] = field(default_factory=list)

    def _count(self) -> None:
        self.lookups += 1
        if self.lookups > MAX_LOOKUPS:
            raise SpfPermError(
                f"more than {MAX_LOOKUPS} DNS lookups (include, a, mx, ptr, exists, redirect): "
                "receivers stop there with permerror; replace some include: by ip4:/ip6:"
            )

    def _answer(self, records: list[Any] | None) -> list[Any]:
        if not records:
            self.void += 1
            if self.void > MAX_VOID_LOOKUPS:
                raise SpfPermError(
                    f"more than {MAX_VOID_LOOKUPS} lookups found nothing (RFC 7208 4.6.4): "
                    "remove the terms naming domains that do not exist"
                )
        return records or []

    def _addresses(self, name: str) -> list[IPAddress]:
        if self.ip.version == 4:
            return self._answer(self.lookup.ipv4(name))
        return self._answer(self.lookup.ipv6(name))

    def _in(self, addresses: list[IPAddress], cidr4: str | None, cidr6: str | None) -> bool:
        prefix = int((cidr4 if self.ip.version == 4 else cidr6) or self.ip.max_prefixlen)
        if prefix > self.ip.max_prefixlen:
            raise SpfPermError(f"a prefix of /{prefix} is too long for IPv{self.ip.version}")
        networks = (ipaddress.ip_network(f"{a}/{prefix}", strict=False) for a in addresses)
        return any(self.ip in network for network in networks)

    def _network(self, term: str, argument: str | None, prefix: str | None, version: int) -> bool:
        try:
            network = ipaddress.ip_network(
                f"{argument}/{prefix}" if prefix else str(argument), strict=False
            )
        except ValueError:
            raise SpfPermError(f"{term!r} is not a valid IPv{version} network") from None
        if network.version != version:
            raise SpfPermError(f"{term!r} is not a valid IPv{version} network")
        return self.ip.version == version and self.ip in network

    def _target(self, argument: str | None, domain: str, term: str) -> str | None:
        target = (argument or domain).rstrip(".").lower()
        if "%" in target:
            self.notes.append(f"{term} uses a macro, which the doctor does not expand: skipped")
            return None
        return target

    def _matches(self, term: str, parts: tuple[str | None, ...], domain: str) -> str | None:
        """Return how ``term`` matches this address (None: it does not)."""
        name, argument, cidr4, cidr6 = (p.lower() if p else p for p in parts)
        if name == "all":
            return term
        if name == "ip4":
            return term if self._network(term, argument, cidr4, 4) else None
        if name == "ip6":
            return term if self._network(term, argument, cidr4, 6) else None
        self._count()
        target = self._target(argument, domain, term)
        if target is None:
            return None
        if name == "a":
            return term if self._in(self._addresses(target), cidr4, cidr6) else None
        if name == "mx":
            exchanges = self._answer(self.lookup.mx(target))
            if len(exchanges) > MAX_MX_NAMES:
                raise SpfPermError(f"{target} has more than {MAX_MX_NAMES} MX records")
            hosts = [host for _pref, host in exchanges if host != "."]
            found = next((h for h in hosts if self._in(self._addresses(h), cidr4, cidr6)), None)
            return f"{term} ({found})" if found else None
        if name == "include":
            result, how = self.check_host(target)
            if result == "none":
                raise SpfPermError(f"include:{target} has no SPF record")
            return f"{term} → {how}" if result == "pass" else None
        if name == "exists":
            return term if self._answer(self.lookup.ipv4(target)) else None
        self.notes.append(f"{term}: ptr is deprecated (RFC 7208 5.5) and many receivers skip it")
        return None

    def check_host(self, domain: str) -> tuple[str, str]:
        """Return (result, the terms that decided it) for this address sending as ``domain``."""
        records = spf_records(self.lookup, domain)
        if not records:
            return "none", ""
        if len(records) > 1:
            raise SpfPermError(f"{domain} has {len(records)} SPF records; publish exactly one")
        redirect = None
        for term in records[0].split()[1:]:
            modifier = MODIFIER.fullmatch(term)
            if modifier:
                if modifier.group(1).lower() == "redirect":
                    redirect = modifier.group(2)
                continue  # exp= and unknown modifiers decide nothing
            mechanism = MECHANISM.fullmatch(term)
            if mechanism is None:
                raise SpfPermError(f"{domain}: {term!r} is not an SPF term")
            qualifier, *parts = mechanism.groups()
            how = self._matches(term, tuple(parts), domain)
            if how is not None:
                return QUALIFIERS[qualifier or "+"], how
        if redirect is not None:
            self._count()
            target = self._target(redirect, domain, f"redirect={redirect}")
            if target is None:
                return "neutral", ""
            result, how = self.check_host(target)
            if result == "none":
                raise SpfPermError(f"redirect={target} has no SPF record")
            return result, f"redirect={target} → {how}" if how else f"redirect={target}"
        return "neutral", ""  # nothing matched (RFC 7208 4.7)


def spf_records(lookup: Lookup, domain: str) -> list[str] | None:
    """Return the ``v=spf1`` TXT records of ``domain`` (None: the domain does not exist)."""
    texts = lookup.txt(domain)
    if texts is None:
        return None
    return [t for t in texts if t.lower() == "v=spf1" or t.lower().startswith("v=spf1 ")]


def _ending(lookup: Lookup, record: str, hops: int = 0) -> str:
    """Say what the record does with senders it does not list, following redirect=."""
    for term in record.split()[1:]:
        lowered = term.lower()
        if lowered in ("all", "+all", "-all", "~all", "?all"):
            return ALL_MEANS["+all" if lowered == "all" else lowered]
    for term in record.split()[1:]:
        if term.lower().startswith("redirect=") and hops < MAX_LOOKUPS:
            target = term.split("=", 1)[1]
            records = spf_records(lookup, target) or []
            if len(records) == 1:
                return _ending(lookup, records[0], hops + 1) + f" by {term}"
            return f"{term}, which has no single record"
    return "no all (others neutral)"


def relay_addresses(lookup: Lookup, host: str) -> list[IPAddress]:
    """Return the addresses of the relay SMTP_HOST names (asking DNS unless it is an IP)."""
    bare = host.strip("[]")
    try:
        return [ipaddress.ip_address(bare)]
    except ValueError:
        pass
    if is_local_host(host):
        return [ipaddress.ip_address("127.0.0.1")]
    return lookup.addresses(host) or []


def _verdict(
    lookup: Lookup, domain: str, relay: str, addresses: list[IPAddress]
) -> tuple[Status, str, list[str]]:
    """Return (status, one line, detail lines) for one domain's SPF and the relay."""
    records = spf_records(lookup, domain)
    if records is None:
        return Status.FAIL, f"{domain} does not exist in DNS (NXDOMAIN)", []
    if not records:
        suggestion = " ".join(f"ip{a.version}:{a}" for a in addresses) or "ip4:<relay address>"
        return (
            Status.FAIL,
            f'{domain} has no SPF record; publish TXT "v=spf1 {suggestion} -all" '
            "(or the include: your relay documents)",
            [],
        )
    if len(records) > 1:
        return Status.FAIL, f"{domain} has {len(records)} SPF records; merge them into one", []
    record = records[0]
    ending = _ending(lookup, record)
    lines = [f"{domain}: {record}"]
    if ending.startswith("+all"):
        return Status.FAIL, f"{domain} ends with +all: anyone may send as {domain}", lines
    results = []
    for address in addresses:
        run = Evaluation(address, lookup)
        try:
            result, how = run.check_host(domain)
        except SpfPermError as exc:
            return Status.FAIL, f"{domain}: SPF permerror: {exc}", lines
        decided = f" by {how}" if how else ""
        lines.append(f"{address}: {result}{decided} ({run.lookups} of {MAX_LOOKUPS} DNS lookups)")
        lines += run.notes
        results.append((address, result, how))
    refused = [(a, r) for a, r, _how in results if r != "pass"]
    if not addresses:
        return Status.WARN, f"the relay {relay} has no address in DNS to check SPF against", lines
    if refused:
        said = ", ".join(f"{a} gets {r}" for a, r in refused)
        if all(is_internal(a) for a, _r in refused):
            return (
                Status.WARN,
                f"{domain} does not authorise the relay {relay} ({said}); it is on this machine "
                "or network, so make sure the record lists the address it sends out from",
                lines,
            )
        return (
            Status.FAIL,
            f"{domain} does not authorise the relay {relay} ({said}); add it to the record "
            "(ip4:/ip6:, or the include: your relay documents)",
            lines,
        )
    hows = ", ".join(dict.fromkeys(how for _a, _r, how in results))
    shown = ", ".join(str(a) for a in addresses)
    status = Status.WARN if ending.startswith(("?all", "no all")) else Status.OK
    return status, f"{domain} authorises the relay {shown} ({hows}); ends {ending}", lines


def check_spf(settings: Settings, lookup: Lookup) -> Check:
    """Check that the envelope and From domains' SPF records authorise the relay."""
    envelope = domain_of(envelope_sender(settings))
    from_domain = domain_of(mail_from_address(settings))
    relay = settings.smtp_host
    addresses = relay_addresses(lookup, relay)
    status, summary, detail = _verdict(lookup, envelope, relay, addresses)
    if from_domain == envelope:
        return Check("spf", status, summary, tuple(detail))
    # Receivers check SPF on the envelope (BOUNCE_ADDRESS) domain; the From domain's record
    # matters to them only where mail comes without VERP, so it can at worst warn.
    other, other_summary, other_detail = _verdict(lookup, from_domain, relay, addresses)
    if other == Status.FAIL:
        other = Status.WARN
    lines = [f"envelope: {summary}", *detail, f"From: {other_summary}", *other_detail]
    return Check("spf", worst([status, other]), summary, tuple(lines))
