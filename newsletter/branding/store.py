"""The look in the database (one ``branding`` row) over the environment, and a short cache.

Every page and mail asks ``BrandCache.get``; it reads the row at most once a second per
process, and a save in this process is seen at once. Other processes (more web workers, the
send workers) see it within that second: no restart, no message between them.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy.orm import Session

from newsletter.branding import validate
from newsletter.config import Settings
from newsletter.mail.brand import DEFAULT_ACCENT, Brand
from newsletter.models import Branding, utcnow

ROW_ID = 1
TEXT_FIELDS = ("name", "pitch", "blurb", "footer", "postal_address", "welcome_text")
LOGO_PATH = "/branding/logo-{version}.png"
log = logging.getLogger("newsletter")


def read(session: Session) -> Branding | None:
    """Return the stored row, or None when nothing was ever set."""
    return session.get(Branding, ROW_ID)


def brand_from(row: Branding | None, settings: Settings) -> Brand:
    """Return the look: what the row sets, else the environment, else the defaults."""
    if row is None:
        return Brand.from_settings(settings)
    logo = LOGO_PATH.format(version=row.version) if row.logo_png else row.logo_url
    return Brand(
        name=row.name or settings.newsletter_name,
        postal_address=row.postal_address or settings.postal_address,
        pitch=row.pitch,
        blurb=row.blurb,
        footer=row.footer,
        welcome_text=row.welcome_text,
        accent=row.accent or DEFAULT_ACCENT,
        logo_url=logo,
        version=row.version,
    )


def load(session: Session, settings: Settings) -> Brand:
    """Return the current look from the database."""
    return brand_from(read(session), settings)


@dataclass(frozen=True)
class Saved:
    brand: Brand
    warnings: tuple[str, ...]


def save(
    session: Session,
    settings: Settings,
    form: Mapping[str, str],
    *,
    logo_upload: bytes | None = None,
    remove_logo: bool = False,
) -> Saved:
    """Check every field, then store them all (or, on the first bad one, nothing)."""
    texts = {name: validate.clean_text(name, form.get(name)) for name in TEXT_FIELDS}
    accent, warning = validate.clean_accent(form.get("accent"))
    logo_url = validate.clean_logo_url(form.get("logo_url"))
    logo = validate.process_logo(logo_upload) if logo_upload is not None else None
    row = read(session)
    if row is None:
        row = Branding(id=ROW_ID, version=0, updated_at=utcnow())
        session.add(row)
    for name, value in texts.items():
        setattr(row, name, value)
    row.accent = accent
    row.logo_url = logo_url
    if logo is not None:
        row.logo_png = logo.png
    elif remove_logo or logo_url:
        row.logo_png = None  # a URL given now replaces an uploaded logo
    row.version = (row.version or 0) + 1
    row.updated_at = utcnow()
    session.commit()
    return Saved(brand_from(row, settings), (warning,) if warning else ())


def logo_png(session: Session) -> tuple[bytes, int] | None:
    """Return the uploaded logo's PNG and its version, or None."""
    found = session.execute(
        sa.select(Branding.logo_png, Branding.version).where(Branding.id == ROW_ID)
    ).first()
    if found is None or found.logo_png is None:
        return None
    return bytes(found.logo_png), found.version


class BrandCache:
    """The look, read from the database at most once every ``ttl`` seconds."""

    def __init__(self, ttl: float = 1.0) -> None:
        self.ttl = ttl
        self._lock = threading.Lock()
        self._brand: Brand | None = None
        self._at = 0.0

    def get(self, loader: Callable[[], Brand], fallback: Callable[[], Brand]) -> Brand:
        """Return the cached look, reloading it when older than ``ttl``.

        A database that cannot answer (an error page while it restarts) leaves the last look
        read, or the environment's.
        """
        now = time.monotonic()
        with self._lock:
            if self._brand is not None and now - self._at < self.ttl:
                return self._brand
        try:
            brand = loader()
        except sa.exc.SQLAlchemyError as exc:
            log.warning("the look could not be read, using the last one: %s", exc)
            return self._brand or fallback()
        with self._lock:
            self._brand, self._at = brand, now
        return brand

    def put(self, brand: Brand) -> None:
        """Take a look just saved, so this process shows it at once."""
        with self._lock:
            self._brand, self._at = brand, time.monotonic()
