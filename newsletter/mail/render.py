"""Build every email from a template name and a context: one builder for every message.

Templates follow one naming rule: ``email/<name>.subject.txt``, ``email/<name>.txt`` and
``email/<name>.html``. No Flask here, so workers and the web app build identical mail.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from email.headerregistry import Address
from email.message import EmailMessage
from email.policy import SMTP
from email.utils import formatdate, make_msgid, parseaddr
from typing import Any

import css_inline
import jinja2

from newsletter.config import Settings
from newsletter.i18n import DEFAULT_LANGUAGE, format_date, translations
from newsletter.mail.brand import Brand
from newsletter.mail.dkim import dkim_signer
from newsletter.mail.urls import ReaderLinks


@dataclass(frozen=True)
class Rendered:
    subject: str
    text: str
    html: str


def make_jinja_env(
    templates_dir: str | os.PathLike[str], language: str = DEFAULT_LANGUAGE
) -> jinja2.Environment:
    """Return a Jinja environment that autoescapes HTML and speaks ``language``.

    ``_()`` and ``{% trans %}`` behave as in the web app's templates (Flask-Babel installs the
    same new-style gettext there), so one catalogue serves pages and mail.
    """
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(templates_dir),
        autoescape=jinja2.select_autoescape(["html"], default_for_string=False),
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
        extensions=["jinja2.ext.i18n"],
    )
    # As babel.cfg extracts them: a multi-line {% trans %} block's whitespace is collapsed.
    env.policies["ext.i18n.trimmed"] = True
    env.install_gettext_translations(translations(language), newstyle=True)  # type: ignore[attr-defined]
    env.globals["language"] = language
    env.globals["format_date"] = functools.partial(format_date, language=language)
    return env


class Mailer:
    """Render and build emails from the app's settings; sign them when DKIM is configured."""

    def __init__(
        self,
        settings: Settings,
        templates_dir: str | os.PathLike[str],
        brand: Callable[[], Brand] | None = None,
    ) -> None:
        self.settings = settings
        # The look set at /editor/settings, asked for at each render (it is cached there).
        self._brand = brand or (lambda: Brand.from_settings(settings))
        self.language = settings.language
        self.jinja = make_jinja_env(templates_dir, self.language)
        self.mail_from = settings.mail_from
        self.from_address = parseaddr(self.mail_from)[1]
        self.from_domain = self.from_address.rpartition("@")[2]
        self._inliner = css_inline.CSSInliner(keep_style_tags=False)
        self._dkim = dkim_signer(settings)

    @property
    def links(self) -> ReaderLinks:
        """Return the builder of every URL a mail links a reader to, from BASE_URL."""
        return ReaderLinks(self.settings.base_url)

    @property
    def brand(self) -> Brand:
        """Return the look every mail shows now: name, address, colour, logo, footer."""
        return self._brand()

    def site_context(self) -> dict[str, Any]:
        """Return what every email template may use: names, addresses, absolute URLs."""
        links = self.links
        brand = self.brand
        return {
            "brand": brand,
            "logo_src": brand.absolute_logo(links.base_url),
            "newsletter_name": brand.name,
            "postal_address": brand.postal_address,
            "mail_from": self.mail_from,
            "from_address": self.from_address,
            "base_url": links.base_url,
            "subscribe_url": links.home,
            "archive_url": links.archive,
        }

    def render(self, name: str, context: Mapping[str, Any]) -> Rendered:
        """Render the three templates of email ``name`` (HTML with its CSS inlined)."""
        ctx = {**self.site_context(), **context}
        subject = self.jinja.get_template(f"email/{name}.subject.txt").render(ctx)
        text = self.jinja.get_template(f"email/{name}.txt").render(ctx)
        html = self.jinja.get_template(f"email/{name}.html").render(ctx)
        return Rendered(" ".join(subject.split()), text, self._inliner.inline(html))

    def build(
        self,
        name: str,
        context: Mapping[str, Any],
        to: str,
        *,
        headers: Mapping[str, str] | None = None,
        message_id: str | None = None,
    ) -> EmailMessage:
        """Return a complete multipart/alternative message for ``to``."""
        return self.assemble(self.render(name, context), to, headers=headers, message_id=message_id)

    def assemble(
        self,
        rendered: Rendered,
        to: str,
        *,
        headers: Mapping[str, str] | None = None,
        message_id: str | None = None,
    ) -> EmailMessage:
        """Put a rendered email into a message with every header."""
        msg = EmailMessage(policy=SMTP)
        msg["From"] = self.mail_from
        msg["To"] = _address(to)
        msg["Subject"] = rendered.subject
        msg["Date"] = formatdate(localtime=False, usegmt=True)
        msg["Message-ID"] = message_id or make_msgid(domain=self.from_domain)
        for key, value in (headers or {}).items():
            msg[key] = value
        msg.set_content(rendered.text, charset="utf-8")
        msg.add_alternative(rendered.html, subtype="html", charset="utf-8")
        return msg

    def to_bytes(self, msg: EmailMessage) -> bytes:
        """Serialise ``msg`` for SMTP, DKIM-signed when configured."""
        return self.sign(msg.as_bytes(policy=SMTP))

    def sign(self, data: bytes) -> bytes:
        """Prepend a DKIM-Signature header when DKIM is configured."""
        return self._dkim(data) if self._dkim else data


def _address(addr: str) -> str:
    local, _, domain = addr.rpartition("@")
    return str(Address(username=local, domain=domain))
