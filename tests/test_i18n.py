"""Every reader-facing message is in each language's catalogue, and pages and mail speak it.

The catalogue checks extract the messages afresh, as ``pybabel extract`` does with
``newsletter/translations/babel.cfg``, so a string added to a template or a page without a
translation fails here, not in front of a reader.
"""

from __future__ import annotations

import html
import io
import re
from collections.abc import Callable, Iterator
from datetime import UTC, date, datetime
from email.message import EmailMessage
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest
from babel.messages.catalog import Catalog
from babel.messages.extract import DEFAULT_KEYWORDS, extract_from_dir
from babel.messages.frontend import parse_mapping_cfg
from babel.messages.mofile import read_mo, write_mo
from babel.messages.pofile import read_po

from newsletter.errors import Invalid
from newsletter.extensions import db
from newsletter.i18n import DEFAULT_LANGUAGE, LANGUAGES, TRANSLATIONS_DIR, format_date
from newsletter.issues import actions as issues
from newsletter.models import IssueStatus, Subscriber, SubscriberStatus
from newsletter.tasks import dispatch
from newsletter.tasks.worker import build_worker
from tests.helpers import csrf_from, html_part, text_part, truncate_all
from tests.helpers.readers import link_to, subscribe

ROOT = Path(__file__).resolve().parent.parent
BABEL_CFG = TRANSLATIONS_DIR / "babel.cfg"
POT = TRANSLATIONS_DIR / "messages.pot"
# The keywords README's `pybabel extract` adds to Babel's own (_, gettext, ngettext, N_ …).
KEYWORDS = {**DEFAULT_KEYWORDS, "lazy_gettext": None}
TRANSLATED = [lang for lang in LANGUAGES if lang != DEFAULT_LANGUAGE]
PLACEHOLDER = re.compile(r"%\([A-Za-z_][A-Za-z0-9_]*\)[sdifr]|%%|%[sdif]")
TAG = re.compile(r"</?[A-Za-z][^>]*>")


def _message_id(message: str | tuple[str, ...]) -> str | tuple[str, ...]:
    return message if isinstance(message, str) else tuple(m for m in message if m)


def extracted() -> dict[str | tuple[str, ...], str]:
    """Return every message the code and templates hold now, with where each is."""
    with BABEL_CFG.open() as cfg:
        method_map, options_map = parse_mapping_cfg(cfg, str(BABEL_CFG))
    found: dict[str | tuple[str, ...], str] = {}
    for filename, lineno, message, _comments, _context in extract_from_dir(
        ROOT, method_map, options_map, keywords=KEYWORDS
    ):
        key = _message_id(message)
        if key and (key if isinstance(key, str) else key[0]):
            found.setdefault(key, f"{filename}:{lineno}")
    return found


def catalogue(language: str) -> Catalog:
    with (TRANSLATIONS_DIR / language / "LC_MESSAGES" / "messages.po").open("rb") as po:
        return read_po(po, locale=language)


def _strings(value: Any) -> list[str]:
    if value is None:
        return [""]
    return [value] if isinstance(value, str) else list(value)


def test_the_catalogue_finds_the_messages_of_pages_mail_and_forms():
    found = extracted()
    files = {where.rsplit(":", 1)[0] for where in found.values()}
    for expected in (
        "templates/base.html",
        "templates/public/archive.html",
        "templates/public/_safe_sender.html",
        "newsletter/subscribers/validate.py",
        "newsletter/web/archive.py",
        "newsletter/app.py",
    ):
        assert expected in files
    assert "Please keep your name under %(limit)s characters." in found


def test_the_template_holds_every_message_extracted_now():
    with POT.open("rb") as pot:
        template = read_po(pot)
    missing = [f"{where}: {key!r}" for key, where in extracted().items() if key not in template]
    assert not missing, (
        "messages.pot is out of date; run the `pybabel extract` of README (Translations):\n"
        + "\n".join(missing)
    )


@pytest.mark.parametrize("language", TRANSLATED)
def test_every_message_is_translated_and_none_is_fuzzy(language):
    translations = catalogue(language)
    problems = []
    for key, where in extracted().items():
        message = translations.get(key)
        if message is None:
            problems.append(f"missing   {where}: {key!r}")
        elif message.fuzzy:
            problems.append(f"fuzzy     {where}: {key!r}")
        elif not all(s.strip() for s in _strings(message.string)):
            problems.append(f"untranslated {where}: {key!r}")
    assert not problems, (
        f"{language}: run `pybabel update` (README: Translations) and translate:\n"
        + "\n".join(problems)
    )


@pytest.mark.parametrize("language", TRANSLATED)
def test_translations_keep_the_placeholders_and_tags_of_their_message(language):
    problems = []
    for message in catalogue(language):
        if not message.id or not message.string:
            continue
        source = _strings(message.id)[-1]  # the plural names every part the forms may use
        for text in _strings(message.string):
            for pattern, what in ((PLACEHOLDER, "placeholders"), (TAG, "HTML tags")):
                if sorted(pattern.findall(source)) != sorted(pattern.findall(text)):
                    problems.append(f"{what} differ: {message.id!r} -> {text!r}")
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize("language", TRANSLATED)
def test_the_compiled_catalogue_is_the_one_of_the_po_file(language):
    folder = TRANSLATIONS_DIR / language / "LC_MESSAGES"
    fresh = io.BytesIO()
    write_mo(fresh, catalogue(language), use_fuzzy=False)
    fresh.seek(0)
    with (folder / "messages.mo").open("rb") as mo:
        committed = read_mo(mo)
    compiled = read_mo(fresh)

    def messages(cat: Catalog) -> dict[Any, Any]:
        return {_message_id(m.id): tuple(_strings(m.string)) for m in cat if m.id}

    assert messages(committed) == messages(compiled), (
        f"{folder}/messages.mo is out of date: run `pybabel compile` (README: Translations)"
    )


def test_dates_are_spelled_in_the_readers_language():
    day = date(2026, 12, 1)
    assert format_date(day, "de") == "1. Dezember 2026"
    assert format_date(datetime(2026, 12, 1, 23, 0, tzinfo=UTC), "de") == "1. Dezember 2026"
    assert "December" in format_date(day, "en")


# --- pages and mail in German -----------------------------------------------------------------

GERMAN = {
    "NEWSLETTER_LANGUAGE": "de",
    "NEWSLETTER_NAME": "Tipp der Woche",
    "POSTAL_ADDRESS": "Beispielweg 1, 12345 Musterstadt",
}
# Words of English that no German page has: an untranslated text, or one never marked for
# translation, shows up as one of them.
ENGLISH_WORDS = re.compile(
    r"\b(?:the|The|you|You|your|Your|please|Please|and|with|this|This|that|our|Our|here|"
    r"for|from|have|has|been|click|Click|Subscribe|subscribe|unsubscribe|Unsubscribe|"
    r"confirm|Confirm|Back|Check|inbox|email|Email|address|sent|Sent|tips)\b"
)
URL = re.compile(r"https?://\S+|[\w.+-]+@[\w.-]+")
ATTRIBUTES = ("title", "placeholder", "aria-label", "alt", "content")


class _Visible(HTMLParser):
    """Collect what a reader sees or hears of a page: text and readable attributes."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self._hidden = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in ("script", "style"):
            self._hidden += 1
        values = dict(attrs)
        for name in ATTRIBUTES:
            if tag == "meta" and name == "content" and values.get("name") != "description":
                continue
            if values.get(name):
                self.parts.append(str(values[name]))
        if tag == "input" and values.get("type") in ("submit", "button") and values.get("value"):
            self.parts.append(str(values["value"]))

    def handle_endtag(self, tag: str) -> None:
        if tag in ("script", "style"):
            self._hidden = max(0, self._hidden - 1)

    def handle_data(self, data: str) -> None:
        if not self._hidden:
            self.parts.append(data)


def visible_text(page: str) -> str:
    parser = _Visible()
    parser.feed(page)
    parser.close()
    return URL.sub(" ", " ".join(" ".join(parser.parts).split()))


def _english_fragments(language: str) -> list[str]:
    """Pieces of English from the catalogue that its translations do not also use."""
    translations = catalogue(language)
    german = " ".join(s for m in translations if m.id for s in _strings(m.string))
    fragments = set()
    for message in translations:
        if not message.id:
            continue
        for source in _strings(message.id):
            for piece in re.split(r"%\(\w+\)s|<[^>]+>|%%", html.unescape(source)):
                piece = " ".join(piece.split()).strip(" .,;:!?()→←·")
                if len(piece) >= 4 and piece not in german:
                    fragments.add(piece)
    return sorted(fragments, key=len, reverse=True)


@pytest.fixture
def de_app(make_app: Callable[..., Any]) -> Iterator[Any]:
    app = make_app(**GERMAN)
    with app.app_context():
        truncate_all()
        yield app
        db.session.rollback()


@pytest.fixture
def german(de_app: Any) -> Callable[..., str]:
    """Check that a page or mail is German: no English left, ``expected`` German in it."""
    fragments = _english_fragments("de")

    def check(what: str, content: str, *expected: str, is_html: bool = True) -> str:
        text = visible_text(content) if is_html else URL.sub(" ", " ".join(content.split()))
        english = sorted(set(ENGLISH_WORDS.findall(text)))
        assert not english, f"{what}: English words {english} in: {text}"
        left = [f for f in fragments if re.search(rf"(?<!\w){re.escape(f)}(?!\w)", text)]
        assert not left, f"{what}: untranslated {left} in: {text}"
        for word in expected:
            assert word in content, f"{what}: {word!r} missing from: {text}"
        if is_html and "<html" in content:
            assert '<html lang="de">' in content, what
        return text

    return check


def run_jobs(app: Any) -> int:
    """Run every queued job with a worker of ``app`` (so mail is built in its language)."""
    db.session.commit()
    worker = build_worker(app)
    worker.work(burst=True, with_scheduler=False)
    db.session.expire_all()
    return int(worker.jobs_done)


def _page(answer: Any, status: int = 200) -> str:
    assert answer.status_code == status, answer.get_data(as_text=True)[:2000]
    return str(answer.get_data(as_text=True))


def _form(page: str) -> str:
    match = re.search(r'<form method="post" action="([^"]+)"', page)
    assert match, "no form on the page"
    return html.unescape(match.group(1))


def check_mail(german: Callable[..., str], msg: EmailMessage, *expected: str) -> None:
    what = f"mail {msg['Subject']!r}"
    german(f"{what} (subject)", str(msg["Subject"]), is_html=False)
    german(f"{what} (text)", text_part(msg), *expected, is_html=False)
    german(f"{what} (HTML)", html_part(msg), *expected)


def test_a_german_reader_sees_german_pages_and_mail_from_sign_up_to_leaving(de_app, german, inbox):
    client = de_app.test_client()
    german("front page", _page(client.get("/")), "Archiv", "Abonnieren")

    refused = subscribe(client, "not-an-address")
    german("form with a bad address", _page(refused, 400), "Eine E-Mail-Adresse braucht ein @")
    too_long = subscribe(client, "ann@example.com", "x" * 150)
    german("form with a long name", _page(too_long, 400), "höchstens 100 Zeichen")

    signed_up = _page(subscribe(client, "ann@example.com", "Ann"))
    german("check your inbox", signed_up, "Schau in dein Postfach")
    assert run_jobs(de_app) == 1
    (confirmation,) = inbox.wait_for(1)
    check_mail(german, confirmation, "Tipp der Woche")

    # Another browser than the one that signed up: the link shows a page with a button.
    other_browser = de_app.test_client()
    confirm_path = link_to(confirmation, "/confirm/")
    confirm_page = _page(other_browser.get(confirm_path))
    german("confirm page", confirm_page, "Abo bestätigen")
    welcome_page = _page(other_browser.post(_form(confirm_page)))
    german("welcome page", welcome_page, "Du bist angemeldet", "Gmail", "tips@example.org")

    assert run_jobs(de_app) == 1
    welcome = inbox.wait_for(2)[1]
    check_mail(german, welcome, "Willkommen bei Tipp der Woche")

    german("manage page", _page(other_browser.get(link_to(welcome, "/manage/"))), "Dein Abo")

    leave = _page(other_browser.get(link_to(welcome, "/unsubscribe/")))
    german("unsubscribe page", leave, "Tipp der Woche abbestellen?")
    german("unsubscribed page", _page(other_browser.post(_form(leave))), "Du hast abbestellt")


def test_a_german_reader_gets_german_issues_archive_feed_and_error_pages(de_app, german, inbox):
    client = de_app.test_client()
    reader = Subscriber(email="bea@example.com", name="Bea", status=SubscriberStatus.CONFIRMED)
    db.session.add(reader)
    db.session.commit()
    issue = issues.create_issue("Schneller tippen", "Ein **Tipp** für jeden Tag.")
    dispatch.send_issue(issue.id)
    run_jobs(de_app)
    (copy,) = inbox.wait_for(1)
    assert copy["To"] == reader.email
    check_mail(german, copy, "Schneller tippen")

    db.session.refresh(issue)
    assert issue.status is IssueStatus.SENT
    issue.sent_at = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)
    db.session.commit()
    archive = german("archive", _page(client.get("/archive")), "1. Dezember 2026")
    assert "Schneller tippen" in archive
    german(
        "archived issue", _page(client.get(f"/archive/{issue.slug}")), "1. Dezember 2026", "Tipp"
    )
    german("empty archive page", _page(client.get("/archive?page=7"), 404))
    german("unknown issue", _page(client.get("/archive/nichts-hier"), 404))
    german("unknown page", _page(client.get("/nothing-here"), 404))
    german("safe sender", _page(client.get("/safe-sender")), "tips@example.org")
    german("bad confirm link", _page(client.get("/confirm/not-a-token"), 400))
    german("bad unsubscribe link", _page(client.get("/unsubscribe/not-a-token"), 400))
    german("expired form", _page(client.post("/subscribe", data={"email": "c@example.com"}), 400))
    german("captured mail", _page(client.get("/dev/mail")))

    feed = _page(client.get("/feed.xml"))
    assert 'xml:lang="de"' in feed
    assert "Jeder Tipp von Tipp der Woche" in feed


def test_past_the_sign_up_limit_the_challenge_page_is_german(make_app, german):
    app = make_app(**GERMAN, SUBSCRIBE_RATE_LIMIT="1/600")
    client = app.test_client()
    with app.app_context():
        german("first sign-up", _page(subscribe(client, "one@example.com")))
        answer = subscribe(client, "two@example.com")
        german("sign-up past the limit", answer.get_data(as_text=True))


def test_error_text_translates_a_message_and_fills_in_its_parts(de_app):
    error_text = de_app.jinja_env.globals["error_text"]
    with de_app.test_request_context("/"):
        long_name = Invalid("name", "Please keep your name under %(limit)s characters.", limit=100)
        assert long_name.message == "Please keep your name under 100 characters."
        german = error_text(long_name)
        assert "100" in german and german != long_name.message
        assert error_text(Invalid("email", "Something nobody translated.")) == (
            "Something nobody translated."
        )
        assert error_text(None) == ""


def test_english_pages_say_english(make_app):
    app = make_app()
    with app.app_context():
        truncate_all()
        client = app.test_client()
        front = _page(client.get("/"))
        assert '<html lang="en">' in front
        archive = _page(client.get("/archive"))
        assert "Archive" in archive and "No tips have been sent yet" in archive
        answer = client.post(
            "/subscribe",
            data={"email": "x", "csrf_token": csrf_from(front)},
            follow_redirects=True,
        )
        assert "An email address needs an @" in _page(answer, 400)
