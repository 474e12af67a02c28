"""Languages: which ones ship, their message catalogues, and dates spelled in them.

No Flask here: the web app (through Flask-Babel) and the mail builder (through Jinja's i18n
extension) read the same catalogues, ``newsletter/translations/<lang>/LC_MESSAGES/``.
"""

from __future__ import annotations

import functools
from datetime import date, datetime
from pathlib import Path

from babel import Locale
from babel.dates import format_date as babel_format_date
from babel.support import NullTranslations, Translations

TRANSLATIONS_DIR = Path(__file__).parent / "translations"
DOMAIN = "messages"
DEFAULT_LANGUAGE = "en"
# English is the source language: its catalogue is the messages themselves.
LANGUAGES = ("en", "de")


def N_(message: str) -> str:
    """Mark ``message`` for the catalogue without translating it; it is translated where shown.

    For code that must not know the reader's language (the domain layer, module constants):
    the English text stays the message, and the page or mail translates it (``error_text``).
    """
    return message


@functools.lru_cache(maxsize=len(LANGUAGES))
def translations(language: str) -> NullTranslations:
    """Return the compiled catalogue of ``language`` (English: the messages as written)."""
    if language == DEFAULT_LANGUAGE:
        return NullTranslations()
    return Translations.load(str(TRANSLATIONS_DIR), [language], DOMAIN)


def format_date(value: date | datetime, language: str, style: str = "long") -> str:
    """Spell a date the way readers of ``language`` write it (``long``: 1 December 2026)."""
    return babel_format_date(value, format=style, locale=Locale.parse(language))


def weekday_name(index: int, language: str) -> str:
    """Return the name of weekday ``index`` (0 = Monday) in ``language``."""
    return str(Locale.parse(language).days["format"]["wide"][index])
