"""Images uploaded into an issue: checked to be images, made fit for mail, kept on disk.

Pillow decodes the upload in full (a file that only claims to be an image is refused), SVG is
refused (it can carry script), the picture is scaled down to ``MAX_WIDTH`` pixels wide and
saved afresh, which leaves its metadata (EXIF: camera, place, time) behind. Files are named by
their content, so the same picture uploaded twice is one file with one stable address; they are
kept in the instance folder or a bucket (``image_store``).
"""

from __future__ import annotations

import hashlib
import io
import re
import warnings

from PIL import Image, UnidentifiedImageError

from newsletter.errors import Invalid
from newsletter.issues.image_store import FOLDER, ImageStore

MAX_BYTES = 10 * 1024 * 1024
MAX_WIDTH = 1200  # wider than any mail client shows; twice a phone's width for sharpness
MAX_PIXELS = 50_000_000  # a small file that decodes to a huge picture is refused
MAX_ALT = 300
__all__ = ["FOLDER", "MAX_BYTES", "NAME", "clean_alt", "store_image"]
NAME = re.compile(r"^[0-9a-f]{32}\.(png|jpg|gif|webp)$")
_KEEP = {"PNG": "png", "JPEG": "jpg", "GIF": "gif", "WEBP": "webp"}


def clean_alt(alt: str | None) -> str:
    """Return the alt text as one line; refuse none (readers with images off see only it)."""
    text = " ".join((alt or "").split()).replace("[", "(").replace("]", ")")
    if not text:
        raise Invalid("alt", "Describe the image in a few words (alt text): it is required.")
    if len(text) > MAX_ALT:
        raise Invalid("alt", f"The alt text is longer than {MAX_ALT} characters.")
    return text


def store_image(data: bytes, store: ImageStore) -> str:
    """Check, shrink and keep an uploaded image in ``store``; return its file name."""
    if len(data) > MAX_BYTES:
        raise Invalid("image", "The image is larger than 10 MB; please upload a smaller one.")
    head = data[:512].lstrip().lower()
    if head.startswith((b"<?xml", b"<svg")) or b"<svg" in head:
        raise Invalid(
            "image", "SVG images are not accepted (they can carry scripts); use PNG or JPEG."
        )
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data)) as probe:
                kind = probe.format or ""
                if probe.width * probe.height > MAX_PIXELS:
                    raise Invalid(
                        "image", "The image has too many pixels; please upload a smaller one."
                    )
                probe.load()  # decode it all: a truncated or forged file fails here
                picture = probe.copy()
    except (
        UnidentifiedImageError,
        OSError,
        SyntaxError,
        ValueError,
        Image.DecompressionBombWarning,
        Image.DecompressionBombError,
    ):
        raise Invalid(
            "image", "That file is not an image we can read (PNG, JPEG, GIF or WebP)."
        ) from None
    if kind not in _KEEP:
        raise Invalid(
            "image", f"{kind or 'That'} images are not accepted; use PNG, JPEG, GIF or WebP."
        )
    if picture.width > MAX_WIDTH:
        height = max(1, round(picture.height * MAX_WIDTH / picture.width))
        picture = picture.resize((MAX_WIDTH, height), Image.Resampling.LANCZOS)
    if kind == "JPEG" and picture.mode not in ("RGB", "L"):
        picture = picture.convert("RGB")
    out = io.BytesIO()
    # Saved without the original's info (no exif=, no icc_profile= passed): metadata is dropped.
    picture.save(out, format=kind, **({"quality": 85, "optimize": True} if kind == "JPEG" else {}))
    cleaned = out.getvalue()
    name = f"{hashlib.sha256(cleaned).hexdigest()[:32]}.{_KEEP[kind]}"
    store.put(name, cleaned)
    return name
