"""The newsletter's look as pages and mail use it: the settings page's choices over the
environment's NEWSLETTER_NAME and POSTAL_ADDRESS."""

from __future__ import annotations

from dataclasses import dataclass

from newsletter.config import Settings

DEFAULT_ACCENT = "#2454d6"


@dataclass(frozen=True)
class Brand:
    """What every page and mail shows of the newsletter; empty text means 'none'."""

    name: str
    postal_address: str
    pitch: str = ""
    blurb: str = ""  # the front page's paragraph; empty: the built-in one
    footer: str = ""
    welcome_text: str = ""  # the welcome mail's paragraph; empty: the built-in one
    accent: str = DEFAULT_ACCENT
    logo_url: str = ""  # an https URL, or the path of the uploaded logo on this site
    version: int = 0

    @classmethod
    def from_settings(cls, settings: Settings) -> Brand:
        """Return the look the environment alone gives (nothing set at /editor/settings)."""
        return cls(name=settings.newsletter_name, postal_address=settings.postal_address)

    def absolute_logo(self, base_url: str) -> str:
        """Return the logo's URL for a mail (absolute), or '' when there is none."""
        if not self.logo_url or self.logo_url.startswith("https://"):
            return self.logo_url
        return base_url.rstrip("/") + self.logo_url

    def paragraphs(self, text: str) -> list[str]:
        """Split an editor's text into paragraphs at blank lines."""
        return [" ".join(p.split()) for p in text.replace("\r\n", "\n").split("\n\n") if p.strip()]
