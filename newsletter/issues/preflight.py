"""Preflight: what to look at before an issue goes to anyone, test or send.

Warnings (Gmail's clipping, images without alt text, leftover "TK"/"TODO"/"lorem", broken
links) the editor may override; failures (no postal address in production, a body that does
not render) block. Links are answered by a job (``tasks.link_check``), never here: this module
only names them.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from html.parser import HTMLParser

from newsletter.delivery import message
from newsletter.errors import NewsletterError
from newsletter.mail.body import markdown_to_html
from newsletter.mail.merge import with_fallbacks
from newsletter.mail.render import Mailer
from newsletter.models import Issue

# Gmail shows "[Message clipped]" past this many bytes of HTML and hides the rest.
GMAIL_CLIP_BYTES = 102 * 1024
WARNING, FAILURE = "warning", "failure"
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
