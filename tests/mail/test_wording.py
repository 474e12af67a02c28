"""The confirmation and welcome mails read as if a person wrote them, and say what they must."""

from __future__ import annotations

import re
from datetime import timedelta
from zoneinfo import ZoneInfo

import pytest

from newsletter.extensions import db
from newsletter.i18n import format_date
from newsletter.models import Subscriber, SubscriberStatus, utcnow
from newsletter.services import tokens
from newsletter.tasks.jobs import send_confirmation, send_welcome
from tests.helpers import html_part, links, text_part

BASE = "http://newsletter.test"
BERLIN = ZoneInfo("Europe/Berlin")


def _confirmation(app, inbox, status: str = "pending"):
    sub = Subscriber(email="ann@example.com", status=SubscriberStatus(status))
    db.session.add(sub)
    db.session.commit()
    assert send_confirmation(sub.id) == "sent"
    (msg,) = inbox.wait_for(1)
    return msg


def _welcome(app, inbox, name: str = "Ada"):
    sub = Subscriber(email="ada@example.com", name=name, status=SubscriberStatus.CONFIRMED)
    db.session.add(sub)
    db.session.commit()
    assert send_welcome(sub.id) == "sent"
    (msg,) = inbox.wait_for(1)
    return sub, msg


def _text(msg) -> str:
    return text_part(msg).replace("\r\n", "\n")


def _both(msg) -> tuple[str, str]:
    # Compare the words, not the line breaks or the markup around them.
    text = " ".join(text_part(msg).split())
    html = " ".join(re.sub(r"<[^>]+>", " ", html_part(msg)).split())
    return text, html.replace("&#39;", "'").replace("&amp;", "&")


def _prose_lines_are_short(text: str) -> None:
    for line in text.splitlines():
        assert len(line) <= 72 or " " not in line, line  # only a URL alone may be longer


def test_the_confirmation_asks_to_open_the_link_and_says_how_long_it_works(app, inbox):
    msg = _confirmation(app, inbox)
    until = format_date((utcnow() + timedelta(days=7)).date(), "en")
    for part in _both(msg):
        assert "Open this link to confirm" in part
        assert "press the button" not in part.lower()
        assert f"This link works for 7 days (until {until})." in part
        assert "Didn't ask for this? Then just ignore this email" in part
    (confirm,) = [u for u in links(msg) if "/confirm/" in u]
    assert f"\n{confirm}\n" in _text(msg)  # alone on its line: never broken
    _prose_lines_are_short(_text(msg))


def test_the_confirmation_keeps_one_short_safe_sender_line(app, inbox):
    msg = _confirmation(app, inbox)
    text = _text(msg)
    (line,) = [" ".join(p.split()) for p in text.split("\n\n") if "tips@example.org" in p]
    assert "Gmail, Outlook or Apple Mail" in line and len(line) < 200
    assert "Add to Outlook contacts" not in text + html_part(msg)  # not the full steps


@pytest.mark.parametrize(
    ("max_age", "said"),
    [
        (3 * 86400, "for 3 days (until "),
        (86400, "for 24 hours."),
        (36 * 3600, "for 36 hours."),
        (90 * 60, "for 90 minutes."),
        (45, "for 45 seconds."),
    ],
)
def test_the_confirmation_says_its_validity_as_a_person_would(make_app, inbox, max_age, said):
    app = make_app(CONFIRM_MAX_AGE=str(max_age))
    with app.app_context():
        db.session.execute(Subscriber.__table__.delete())
        msg = _confirmation(app, inbox)
    for part in _both(msg):
        assert f"This link works {said}" in part


def test_the_welcome_greets_by_name_and_links_the_readers_own_page(app, inbox):
    sub, msg = _welcome(app, inbox, name="Ada")
    text, html = _both(msg)
    for part in (text, html):
        assert part.startswith("Hi Ada,") or "Hi Ada," in part
        assert "Change your name or address, pause, or leave" in part
        assert "A new tip arrives about once a week." in part  # no WEEKLY_SLOT here
    (manage,) = re.findall(rf"{BASE}/manage/([\w.-]+)", text_part(msg))
    assert tokens().read_manage(manage).names(sub)
    assert f'href="{BASE}/manage/{manage}"' in html_part(msg)
    for provider in ("Gmail", "Outlook", "Apple Mail"):  # the full safe-sender steps
        assert provider in text and provider in html
    assert "Add to Outlook contacts" in text and "Add to Outlook contacts" in html
    assert f"{BASE}/archive" in text and f'href="{BASE}/archive"' in html_part(msg)
    unsubscribe = str(msg["List-Unsubscribe"]).strip().strip("<>")
    assert unsubscribe in text_part(msg) and f'href="{unsubscribe}"' in html_part(msg)
    _prose_lines_are_short(_text(msg))


def test_a_welcome_without_a_name_still_greets(app, inbox):
    _sub, msg = _welcome(app, inbox, name="")
    for part in _both(msg):
        assert "Hi there," in part and "Hi ," not in part


@pytest.mark.parametrize(
    ("slot", "said"),
    [
        ("every tuesday at 09:00 in Europe/Berlin", "Tips arrive every Tuesday morning."),
        ("every friday at 14:30 in UTC", "Tips arrive every Friday afternoon."),
        ("every sunday at 19:00 in America/New_York", "Tips arrive every Sunday evening."),
        ("every monday at 06:00 in UTC", "Tips arrive every Monday morning."),
        ("every monday at 03:00 in UTC", "Tips arrive every Monday, early in the morning."),
    ],
)
def test_the_welcome_says_which_day_tips_arrive(make_app, inbox, slot, said):
    app = make_app(WEEKLY_SLOT=slot)
    with app.app_context():
        db.session.execute(Subscriber.__table__.delete())
        _sub, msg = _welcome(app, inbox)
    for part in _both(msg):
        assert said in part


def test_days_and_dates_are_spelled_in_the_newsletters_language(make_app, inbox):
    app = make_app(NEWSLETTER_LANGUAGE="de", WEEKLY_SLOT="every tuesday at 09:00 in Europe/Berlin")
    with app.app_context():
        db.session.execute(Subscriber.__table__.delete())
        _sub, welcome = _welcome(app, inbox)
        inbox.clear()
        confirmation = _confirmation(app, inbox)
    assert "Dienstag" in text_part(welcome) and "Dienstag" in html_part(welcome)
    until = format_date((utcnow() + timedelta(days=7)).astimezone(BERLIN).date(), "de")
    assert until in text_part(confirmation) and until in html_part(confirmation)
    assert 'lang="de"' in html_part(welcome)
