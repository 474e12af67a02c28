"""Check what an editor sets as the look: text lengths, a readable accent colour, a logo
that is a real image (or an https URL), before anything is stored."""

from __future__ import annotations

import io
import re
import unicodedata
import warnings
from dataclasses import dataclass
from urllib.parse import urlsplit

from PIL import Image, UnidentifiedImageError

from newsletter.errors import Invalid

# The longest text each field takes (characters), as the table's columns hold them.
LIMITS = {
    "name": 100,
    "pitch": 300,
    "blurb": 2000,
    "footer": 1000,
    "postal_address": 300,
    "welcome_text": 2000,
}
ONE_LINE = {"name", "pitch", "postal_address"}
LABELS = {
    "name": "The newsletter's name",
    "pitch": "The pitch",
    "blurb": "The front page's text",
    "footer": "The footer",
    "postal_address": "The postal address",
    "welcome_text": "The welcome mail's text",
}
LOGO_MAX_BYTES = 2 * 1024 * 1024
LOGO_MAX_PIXELS = 40_000_000  # a decompression bomb is refused before it is decoded
LOGO_BOX = (600, 200)  # the largest a logo is kept: wide enough for a mail's header at 2x
LOGO_FORMATS = {"PNG", "JPEG", "GIF", "WEBP"}
HEX = re.compile(r"#?([0-9a-fA-F]{3}|[0-9a-fA-F]{6})")
WHITE = (255, 255, 255)
# WCAG 2: 4.5:1 reads as body text; under 3:1 even a button's bold label is hard to read.
READABLE, LEGIBLE = 4.5, 3.0


def clean_text(field: str, value: str | None) -> str:
    """Return an editor's text for ``field`` trimmed; refuse one too long or with controls."""
    raw = (value or "").replace("\r\n", "\n").strip()
    limit = LIMITS[field]
    if len(raw) > limit:
        raise Invalid(field, f"{LABELS[field]} is longer than {limit} characters.")
    allowed = "" if field in ONE_LINE else "\n\t"
    if any(unicodedata.category(c) == "Cc" and c not in allowed for c in raw):
        where = (
            "holds a line break or a control character"
            if allowed == ""
            else "holds a control character"
        )
        raise Invalid(field, f"{LABELS[field]} {where}.")
    return raw


def clean_accent(value: str | None) -> tuple[str, str | None]:
    """Return the accent colour as ``#rrggbb`` and a warning, or '' for the default.

    Refused: anything that is not a hex colour, and a colour too light to read white text on
    (buttons) or to read as a link on white.
    """
    raw = (value or "").strip()
    if not raw:
        return "", None
    found = HEX.fullmatch(raw)
    if not found:
        raise Invalid("accent", "The accent colour must be a hex colour such as #2454d6.")
    digits = found.group(1).lower()
    if len(digits) == 3:
        digits = "".join(c * 2 for c in digits)
    colour = "#" + digits
    ratio = contrast(_rgb(colour), WHITE)
    if ratio < LEGIBLE:
        raise Invalid(
            "accent",
            f"{colour} is too light: white text on it and links in it on white have a "
            f"contrast of {ratio:.1f}:1, and at least {LEGIBLE:.0f}:1 is needed to read them. "
            "Pick a darker colour.",
        )
    if ratio < READABLE:
        return colour, (
            f"{colour} has a contrast of {ratio:.1f}:1 against white: fine for buttons and "
            f"headings, but links in small text are easier to read at {READABLE}:1 or more."
        )
    return colour, None


def _rgb(colour: str) -> tuple[int, int, int]:
    return int(colour[1:3], 16), int(colour[3:5], 16), int(colour[5:7], 16)


def _luminance(rgb: tuple[int, int, int]) -> float:
    def channel(c: int) -> float:
        s = c / 255
        return s / 12.92 if s <= 0.04045 else ((s + 0.055) / 1.055) ** 2.4

    r, g, b = (channel(c) for c in rgb)
    return 0.2126 * r + 0.7152 * g + 0.0722 * b


def contrast(a: tuple[int, int, int], b: tuple[int, int, int]) -> float:
    """Return the WCAG contrast ratio of two colours (1 to 21)."""
    la, lb = sorted((_luminance(a), _luminance(b)), reverse=True)
    return (la + 0.05) / (lb + 0.05)


def clean_logo_url(value: str | None) -> str:
    """Return an https URL to a logo, or ''; refuse any other scheme (javascript:, data:, http:)."""
    raw = (value or "").strip()
    if not raw:
        return ""
    if len(raw) > 500:
        raise Invalid("logo_url", "The logo's address is longer than 500 characters.")
    parts = urlsplit(raw)
    if parts.scheme.lower() != "https" or not parts.hostname or any(c in raw for c in ' "<>\\'):
        raise Invalid(
            "logo_url",
            "The logo's address must be a full https:// address of an image "
            "(e.g. https://example.org/logo.png).",
        )
    if any(unicodedata.category(c) == "Cc" for c in raw):
        raise Invalid("logo_url", "The logo's address holds a control character.")
    return raw


@dataclass(frozen=True)
class Logo:
    png: bytes
    width: int
    height: int


def process_logo(data: bytes) -> Logo:
    """Return an uploaded logo checked to be a real image, shrunk to fit, as PNG.

    SVG is refused (it can carry scripts, and mail programs do not show it); so is anything
    Pillow cannot read as PNG, JPEG, GIF or WebP, and anything over 2 MB.
    """
    if len(data) > LOGO_MAX_BYTES:
        raise Invalid("logo", "The logo is larger than 2 MB; please upload a smaller image.")
    if not data:
        raise Invalid("logo", "The logo file is empty.")
    head = data[:512].lstrip().lower()
    if head.startswith((b"<?xml", b"<svg", b"<!doctype")) or b"<svg" in head:
        raise Invalid(
            "logo",
            "SVG logos are not taken (mail programs do not show them, and they can carry "
            "scripts): please upload a PNG, JPEG, GIF or WebP.",
        )
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data)) as probe:
                if probe.format not in LOGO_FORMATS:
                    raise UnidentifiedImageError(probe.format)
                if probe.width * probe.height > LOGO_MAX_PIXELS:
                    raise Image.DecompressionBombError("too many pixels")
                probe.verify()
            with Image.open(io.BytesIO(data)) as image:
                image.seek(0)  # the first frame of an animation
                image.load()
                frame = image.convert("RGBA")
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise Invalid(
            "logo", "The logo has too many pixels; please upload a smaller image."
        ) from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError, EOFError):
        raise Invalid(
            "logo", "That file is not an image we can read: please upload a PNG, JPEG, GIF or WebP."
        ) from None
    frame.thumbnail(LOGO_BOX, Image.Resampling.LANCZOS)
    out = io.BytesIO()
    frame.save(out, format="PNG", optimize=True)
    return Logo(out.getvalue(), frame.width, frame.height)


def favicon(png: bytes | None, accent: str) -> bytes:
    """Return a favicon.ico: the logo fitted into a square, or a plain square in the accent."""
    size = 64
    if png:
        with Image.open(io.BytesIO(png)) as logo:
            icon = Image.new("RGBA", (size, size), (0, 0, 0, 0))
            fitted = logo.convert("RGBA")
            fitted.thumbnail((size, size), Image.Resampling.LANCZOS)
            icon.paste(fitted, ((size - fitted.width) // 2, (size - fitted.height) // 2), fitted)
    else:
        icon = Image.new("RGBA", (size, size), (*_rgb(accent), 255))
        inner = Image.new("RGBA", (size // 2, size // 8), (*WHITE, 255))
        for row in (2, 3, 4):
            icon.paste(inner, (size // 4, row * size // 8 + size // 16))
    out = io.BytesIO()
    icon.save(out, format="ICO", sizes=[(16, 16), (32, 32), (48, 48), (64, 64)])
    return out.getvalue()
