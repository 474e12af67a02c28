"""Pre-send checks of the setup: settings, the SMTP relay, SPF, DKIM, DMARC, bounces, and the
image store.

No Flask, no RQ: every check takes the Settings (and a Lookup for DNS) and returns a
Check, so `newsletter doctor` and the editor's page show the same thing.
"""

from __future__ import annotations

from collections.abc import Callable

from newsletter.config import Settings
from newsletter.doctor.bounces import check_bounces
from newsletter.doctor.dkim import check_dkim
from newsletter.doctor.dmarc import check_dmarc
from newsletter.doctor.images import check_images
from newsletter.doctor.lookup import DnsUnavailable, Lookup
from newsletter.doctor.report import Check, Status, worst
from newsletter.doctor.settings import check_settings
from newsletter.doctor.smtp import check_smtp
from newsletter.doctor.spf import check_spf

__all__ = ["Check", "DnsUnavailable", "Lookup", "Status", "run_checks", "worst"]

DNS_CHECKS: tuple[tuple[str, Callable[[Settings, Lookup], Check]], ...] = (
    ("spf", check_spf),
    ("dkim", check_dkim),
    ("dmarc", check_dmarc),
    ("bounces", check_bounces),
)


def run_checks(
    settings: Settings, resolver: Lookup, smtp_timeout: float | None = None
) -> list[Check]:
    """Run every check, settings first; a DNS lookup that cannot be made is a warn.

    ``smtp_timeout`` bounds each wait on the relay, and on the image store too (10 s if None).
    """
    checks = [check_settings(settings), check_smtp(settings, smtp_timeout)]
    for name, check in DNS_CHECKS:
        try:
            checks.append(check(settings, resolver))
        except DnsUnavailable as exc:
            checks.append(Check(name, Status.WARN, f"DNS lookup could not be made: {exc}"))
    checks.append(check_images(settings, smtp_timeout or 10.0))
    return checks
