"""DMARC: the From domain publishes a policy, and DKIM or SPF aligns with From."""

from __future__ import annotations

from newsletter.config import Settings
from newsletter.doctor.lookup import Lookup
from newsletter.doctor.names import (
    aligned,
    domain_of,
    envelope_sender,
    mail_from_address,
    organisational_domain,
)
from newsletter.doctor.report import Check, Status

POLICIES = ("none", "quarantine", "reject")


def _tags(record: str) -> dict[str, str]:
    tags = {}
    for part in record.split(";"):
        name, eq, value = part.partition("=")
        if eq:
            tags[name.strip().lower()] = value.strip()
    return tags


def _find(lookup: Lookup, from_domain: str) -> tuple[str, list[str]]:
    """Return the domain whose ``_dmarc`` name holds DMARC records, and those records."""
    # RFC 7489 6.6.3: the From domain first, then its organisational domain.
    for domain in dict.fromkeys([from_domain, organisational_domain(from_domain)]):
        texts = lookup.txt(f"_dmarc.{domain}") or []
        records = [t for t in texts if t.replace(" ", "").upper().startswith("V=DMARC1")]
        if records:
            return domain, records
    return "", []


def check_dmarc(settings: Settings, lookup: Lookup) -> Check:
    """Check the DMARC record of MAIL_FROM's domain and whether our mail aligns with it."""
    from_domain = domain_of(mail_from_address(settings))
    found_at, records = _find(lookup, from_domain)
    org = organisational_domain(from_domain)
    if not records:
        places = " or ".join(dict.fromkeys(f"_dmarc.{d}" for d in (from_domain, org)))
        return Check(
            "dmarc",
            Status.FAIL,
            f"no DMARC record at {places}: Gmail and Yahoo require one from bulk senders",
            (f'start with TXT "v=DMARC1; p=none; rua=mailto:dmarc@{org}" at _dmarc.{org}',),
        )
    where = f"_dmarc.{found_at}"
    if len(records) > 1:
        return Check(
            "dmarc",
            Status.FAIL,
            f"{len(records)} DMARC records at {where}: receivers ignore them all; keep one",
            tuple(records),
        )
    record = records[0]
    tags = _tags(record)
    detail = [f"{where}: {record}"]
    policy = tags.get("p", "").lower()
    if found_at != from_domain and tags.get("sp"):
        policy = tags["sp"].lower()  # a subdomain's policy, published at its parent
    if policy not in POLICIES:
        return Check(
            "dmarc",
            Status.FAIL,
            f"the record at {where} has no valid p= (none, quarantine or reject)",
            tuple(detail),
        )
    adkim, aspf = tags.get("adkim", "r").lower(), tags.get("aspf", "r").lower()
    dkim_domain = (settings.dkim_domain or "").lower()
    envelope = domain_of(envelope_sender(settings))
    ways = []
    mode = {"s": "strict", "r": "relaxed"}
    if dkim_domain and aligned(dkim_domain, from_domain, adkim):
        ways.append(f"DKIM d={dkim_domain} ({mode.get(adkim, adkim)})")
    if aligned(envelope, from_domain, aspf):
        ways.append(f"SPF on {envelope} ({mode.get(aspf, aspf)})")
    if not ways:
        said = (
            f"neither DKIM d={dkim_domain} nor the envelope domain {envelope} aligns"
            if dkim_domain
            else f"without DKIM, the envelope domain {envelope} does not align"
        )
        return Check(
            "dmarc",
            Status.FAIL,
            f"p={policy}, but {said} with From {from_domain}: every issue fails DMARC",
            (
                *detail,
                "sign with DKIM_DOMAIN on the From domain, or put BOUNCE_ADDRESS on it"
                + (" (adkim=s/aspf=s ask for the exact domain)" if "s" in (adkim, aspf) else ""),
            ),
        )
    if policy == "none":
        detail.append("p=none only reports: raise it to quarantine once the reports look right")
    if tags.get("pct", "100") != "100":
        detail.append(f"pct={tags['pct']}: the policy applies to that share of failing mail")
    return Check(
        "dmarc",
        Status.OK,
        f"p={policy} at {where}; From {from_domain} aligned by {' and '.join(ways)}",
        tuple(detail),
    )
