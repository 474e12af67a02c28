"""The mails a reader gets about their own subscription, one function per mail.

Each takes the reader's few fields, their signed link tokens, the links builder
(``mail.urls.ReaderLinks``, which spells every URL) and the settings values it needs, and
returns the message, rendered by the app's Mailer (its templates, and the newsletter's
language through the same catalogue as the pages). No Flask and no RQ here: the jobs in
``tasks/`` reload the reader, check the mail is still owed, sign the tokens, call one of
these, send and settle.
"""

from __future__ import annotations

import bisect
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage

from newsletter.config import WeeklySlot
from newsletter.i18n import format_date, weekday_name
from newsletter.mail.render import Mailer
from newsletter.mail.urls import ReaderLinks

# How long a link works, said as a person would: "7 days", "36 hours", "90 minutes".
_UNITS = (("days", 86400), ("hours", 3600), ("minutes", 60))
# "Tips arrive every Tuesday morning": the part of the day a slot's hour falls in.
_PARTS_OF_DAY = ("early", "morning", "afternoon", "evening", "night")
_PART_STARTS = (5, 12, 17, 22)


def confirmation_mail(
    mailer: Mailer,
    links: ReaderLinks,
    to: str,
    confirm_token: str,
    *,
    max_age: int,
    slot: WeeklySlot | None,
    now: datetime,
) -> EmailMessage:
    """Build the mail with the link that confirms a sign-up, valid ``max_age`` seconds.

    The link's end is given as a date in the newsletter's own time zone (``slot``'s), else UTC.
    """
    unit, size = next(((u, n) for u, n in _UNITS if max_age >= 2 * n), ("seconds", 1))
    until = (now + timedelta(seconds=max_age)).astimezone(slot.zone if slot else UTC)
    return mailer.build(
        "confirm",
        {
            "confirm_url": links.confirm(confirm_token),
            "valid_count": max_age // size,
            "valid_unit": unit,
            "valid_until": format_date(until.date(), mailer.language),
            "language": mailer.language,
        },
        to,
    )


def welcome_mail(
    mailer: Mailer,
    links: ReaderLinks,
    to: str,
    name: str | None,
    *,
    unsubscribe_token: str,
    manage_token: str,
    slot: WeeklySlot | None,
) -> EmailMessage:
    """Build the welcome note, with safe-sender advice and the day the tips arrive."""
    day_part = _PARTS_OF_DAY[bisect.bisect_right(_PART_STARTS, slot.hour if slot else 9)]
    return mailer.build(
        "welcome",
        {
            "unsubscribe_url": links.unsubscribe(unsubscribe_token),
            "manage_url": links.manage(manage_token),
            "name": name or "",
            "weekday": weekday_name(slot.weekday, mailer.language) if slot else "",
            "day_part": day_part,
            "language": mailer.language,
        },
        to,
        headers=links.list_unsubscribe_headers(unsubscribe_token),
    )


def address_link_mail(
    mailer: Mailer, links: ReaderLinks, to: str, name: str | None, address_token: str
) -> EmailMessage:
    """Build the mail to a wanted new address with the link that makes it the reader's."""
    confirm_url = links.manage_address(address_token)
    return mailer.build("change_address", {"confirm_url": confirm_url, "name": name}, to)


def address_notice_mail(mailer: Mailer, to: str, name: str | None, new_email: str) -> EmailMessage:
    """Build the notice to an address just replaced that it no longer gets the tips."""
    return mailer.build("address_changed", {"new_email": new_email, "name": name}, to)


def access_link_mail(
    mailer: Mailer, links: ReaderLinks, to: str, name: str | None, token: str, *, minutes: int
) -> EmailMessage:
    """Build the mail with the link that opens the reader's page with every action, for a while."""
    return mailer.build(
        "manage_link",
        {"manage_url": links.manage(token), "name": name, "valid_minutes": minutes},
        to,
    )


def join_group_mail(
    mailer: Mailer, to: str, name: str | None, *, group: str, join_url: str, valid_days: int
) -> EmailMessage:
    """Build the note to a reader already subscribed who signed up through a group's form:
    the link that adds them to the group, if it was them."""
    return mailer.build(
        "join_group",
        {"join_url": join_url, "name": name, "group": group, "valid_days": valid_days},
        to,
    )
