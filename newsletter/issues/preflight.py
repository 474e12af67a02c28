"""Preflight: what to look at before an issue goes to anyone, test or send.

Warnings (Gmail's clipping, images without alt text, leftover "TK"/"TODO"/"lorem", broken
links, the sending domain's SPF, DKIM or DMARC) the editor may override; failures (no postal
address in production, a body that does not render) block. Links and DNS are answered by jobs
(``tasks.link_check``, ``tasks.mail_setup``), never here: this module only reads their results.

A bad SPF, DKIM or DMARC verdict warns and never blocks: mail still leaves (the relay takes
it), some of it may land in spam, and the editor, who may not run the DNS, decides.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Mapping
from dataclasses import dataclass
from html.parser import HTMLParser
from typing import Any

from newsletter.delivery import message
from newsletter.errors import NewsletterError
from newsletter.mail.body import markdown_to_html
from newsletter.mail.merge import with_fallbacks
from newsletter.mail.render import Mailer
from newsletter.models import Issue

# Gmail shows "[Message clipped]" past this many bytes of HTML and hides the rest.
GMAIL_CLIP_BYTES = 102 * 1024
WARNING, FAILURE = "warning", "failure"
SETUP_NAMES = {"spf": "SPF", "dkim": "DKIM", "dmarc": "DMARC"}
MAX_LINKS = 100  # checked per issue; more are named as not checked
_LEFTOVERS = re.compile(r"\b(TK|TODO)\b|\b(lorem)\b", re.IGNORECASE)


@dataclass(frozen=True)
class Finding:
    """One thing preflight found: a warning the editor may override, or a failure."""

    level: str
    message: str


@dataclass(frozen=True)
class Report:
    """Every finding of one issue, and the links its body holds (checked by a job)."""

    findings: tuple[Finding, ...]
    links: tuple[str, ...]
    #: The sending domain's DNS verdict: done, checking, unavailable or unknown.
    setup: str = "done"
    #: What was looked at when ``setup`` is done: "SPF, DKIM and DMARC of example.com".
    setup_note: str = ""

    @property
    def warnings(self) -> list[Finding]:
        return [f for f in self.findings if f.level == WARNING]

    @property
    def failures(self) -> list[Finding]:
        return [f for f in self.findings if f.level == FAILURE]


class _Body(HTMLParser):
    """Collect the body's http(s) links and its images without alt text."""

    def __init__(self) -> None:
        super().__init__()
        self.links: list[str] = []
        self.bare_images: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        found = dict(attrs)
        if tag == "a" and (found.get("href") or "").startswith(("http://", "https://")):
            self.links.append(found["href"] or "")
        if tag == "img" and not (found.get("alt") or "").strip():
            self.bare_images.append(found.get("src") or "(no address)")


def leftovers(*texts: str) -> list[str]:
    """Return the placeholder words left in ``texts`` ("TK", "TODO", "lorem"), once each."""
    seen: dict[str, None] = {}
    for text in texts:
        for match in _LEFTOVERS.finditer(text):
            word = match.group(0)
            # "tk" or "todo" in lower case is a word of the tip; "lorem" in any case is filler.
            if match.group(2) or word.isupper():
                seen.setdefault(word, None)
    return list(seen)


def check(issue: Issue, mailer: Mailer) -> Report:
    """Run every check that needs no network on ``issue``; name its links for the job."""
    findings: list[Finding] = []
    brand = mailer.brand
    if not brand.postal_address.strip():
        where = "Set one at Settings (postal address) or POSTAL_ADDRESS."
        if mailer.settings.production:
            findings.append(
                Finding(FAILURE, f"No postal address: the law requires one in every mail. {where}")
            )
        else:
            findings.append(
                Finding(WARNING, f"No postal address (required in production). {where}")
            )
    try:
        rendered = message.render_issue(
            mailer,
            issue.subject,
            issue.body_md,
            issue.slug,
            mailer.links.sample_unsubscribe,
            preheader=issue.preheader,
        )
    except NewsletterError as exc:
        findings.append(Finding(FAILURE, f"The issue does not render: {exc.message}"))
        return Report(tuple(findings), ())
    size = len(rendered.html.encode("utf-8"))
    if size > GMAIL_CLIP_BYTES:
        findings.append(
            Finding(
                WARNING,
                f"The mail is {size // 1024} KB: Gmail clips a mail over 102 KB and hides the "
                "rest behind a link.",
            )
        )
    body = _Body()
    body.feed(markdown_to_html(with_fallbacks(issue.body_md), mailer.links.base_url))
    if body.bare_images:
        findings.append(
            Finding(
                WARNING,
                f"{len(body.bare_images)} image(s) without alt text (readers with images off "
                f"see nothing): {', '.join(body.bare_images[:5])}",
            )
        )
    words = leftovers(issue.subject, issue.preheader, issue.body_md)
    if words:
        findings.append(Finding(WARNING, f"Placeholder text left in: {', '.join(words)}."))
    links = tuple(dict.fromkeys(body.links))
    if len(links) > MAX_LINKS:
        findings.append(
            Finding(WARNING, f"{len(links)} links: only the first {MAX_LINKS} are checked.")
        )
    return Report(tuple(findings), links[:MAX_LINKS])


def _named(label: str, summary: str) -> str:
    # "DKIM signing is off" names itself; "no DMARC record at …" gets "DMARC: " before it.
    return summary if summary.startswith(label) else f"{label}: {summary}"


def with_mail_setup(report: Report, verdict: Mapping[str, Any]) -> Report:
    """Add the doctor's SPF, DKIM and DMARC verdict (``tasks.mail_setup``) as warnings."""
    state = str(verdict.get("state", "unknown"))
    found = [c for c in verdict.get("checks", ()) if c.get("name") in SETUP_NAMES]
    warnings = tuple(
        Finding(
            WARNING,
            f"{_named(SETUP_NAMES[c['name']], str(c['summary']))}. Some mail may go to spam; "
            "Sending health says how to fix it.",
        )
        for c in found
        if c.get("status") != "ok"
    )
    if state == "unavailable":
        note = f"SPF, DKIM and DMARC not checked: {verdict.get('why', '')}."
    elif state == "done" and not warnings:
        note = "SPF, DKIM and DMARC: ok."
    else:
        note = ""
    return dataclasses.replace(
        report, findings=report.findings + warnings, setup=state, setup_note=note
    )
