"""DKIM: the selector's published key matches DKIM_PRIVATE_KEY, checked as a receiver would."""

from __future__ import annotations

import logging
from email.utils import formatdate

import dkim

from newsletter.config import Settings
from newsletter.doctor.lookup import Lookup
from newsletter.doctor.names import mail_from_address
from newsletter.doctor.report import Check, Status
from newsletter.mail.dkim import dkim_signer

MIN_KEY_BITS = 1024


class _Reasons(logging.Handler):
    """Keep what dkimpy says while verifying, for the detail lines instead of stderr."""

    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(record.getMessage())


def _tags(record: str) -> dict[str, str]:
    tags = {}
    for part in record.split(";"):
        name, eq, value = part.partition("=")
        if eq:
            tags[name.strip().lower()] = "".join(value.split())
    return tags


def _sample(settings: Settings) -> bytes:
    """Return a small message to sign; only its signature is looked at, it is never sent."""
    sender = mail_from_address(settings).encode("ascii", "replace")
    return (
        b"From: <" + sender + b">\r\nTo: <doctor@invalid>\r\nSubject: DKIM check\r\n"
        b"Date: " + formatdate().encode() + b"\r\nMessage-ID: <dkim-check@doctor.invalid>\r\n"
        b"\r\nNot sent.\r\n"
    )


def check_dkim(settings: Settings, lookup: Lookup) -> Check:
    """Check that ``<selector>._domainkey.<domain>`` publishes the key we sign with."""
    if not settings.dkim_private_key:
        return Check(
            "dkim",
            Status.WARN,
            "DKIM signing is off: Gmail and Yahoo want DKIM from bulk senders",
            (
                "set DKIM_DOMAIN, DKIM_SELECTOR and DKIM_PRIVATE_KEY, or make sure your relay "
                "signs for MAIL_FROM's domain",
            ),
        )
    domain, selector = str(settings.dkim_domain).lower(), str(settings.dkim_selector)
    name = f"{selector}._domainkey.{domain}"
    publish = f'publish TXT "v=DKIM1; k=rsa; p=<the public key, base64>" at {name}'
    records = lookup.txt(name)
    if not records:
        return Check("dkim", Status.FAIL, f"no DKIM key published at {name}", (publish,))
    if len(records) > 1:
        return Check(
            "dkim",
            Status.FAIL,
            f"{len(records)} TXT records at {name}; receivers may pick any: publish one",
            tuple(records),
        )
    record = records[0]
    tags = _tags(record)
    key = tags.get("p", "")
    shown = record.replace(key, f"{key[:12]}…{key[-6:]}") if len(key) > 40 else record
    detail = [f"{name}: {shown}"]
    if "p" in tags and not tags["p"]:
        return Check("dkim", Status.FAIL, f"the key at {name} is revoked (empty p=)", (publish,))
    try:
        _pk, bits, kind, _tlsrpt = dkim.evaluate_pk(name.encode(), record.encode())
    except (dkim.DKIMException, ValueError) as exc:
        return Check("dkim", Status.FAIL, f"the record at {name} is not a usable key: {exc}", ())
    if bits < MIN_KEY_BITS:
        return Check(
            "dkim",
            Status.FAIL,
            f"the key at {name} is {bits} bits: receivers ignore keys under {MIN_KEY_BITS}; "
            "use 2048",
            tuple(detail),
        )
    sign = dkim_signer(settings)
    try:
        signed = sign(_sample(settings))
    except (dkim.DKIMException, ValueError) as exc:
        return Check("dkim", Status.FAIL, f"DKIM_PRIVATE_KEY cannot sign: {exc}", tuple(detail))

    def published(_name: bytes, timeout: int = 5) -> bytes:
        return record.encode()

    # A logger of its own, outside the logging tree: dkimpy's complaints become detail lines.
    reasons = _Reasons()
    verifier = logging.Logger("newsletter.doctor.dkim")
    verifier.addHandler(reasons)
    if not dkim.verify(signed, logger=verifier, dnsfunc=published):
        return Check(
            "dkim",
            Status.FAIL,
            f"the key published at {name} does not match DKIM_PRIVATE_KEY: receivers will "
            "reject every signature",
            (
                *detail,
                *(f"dkimpy: {line}" for line in reasons.lines),
                publish.replace("the public key", "the public half of DKIM_PRIVATE_KEY"),
            ),
        )
    summary = (
        f"d={domain} s={selector}: the published {kind.decode()} key ({bits} bits) matches "
        "DKIM_PRIVATE_KEY"
    )
    if "y" in tags.get("t", "").split(":"):
        return Check("dkim", Status.WARN, summary + ", but t=y marks it as testing", tuple(detail))
    return Check("dkim", Status.OK, summary, tuple(detail))
