"""In headless Chromium: every mail's HTML part fits a 390 px phone, however long its links.

Screenshots of each at 390 and 1280 px land in /tmp/shots/mail/ for a person to look at.
"""

from __future__ import annotations

from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest

from newsletter.extensions import db
from newsletter.issues.actions import create_issue
from newsletter.models import Subscriber, SubscriberStatus
from newsletter.tasks.dispatch import send_issue
from newsletter.tasks.jobs import send_confirmation, send_welcome
from newsletter.tasks.worker import build_worker
from tests.helpers import html_part, truncate_all
from tests.helpers.browser import page

__all__ = ["page"]
pytestmark = pytest.mark.browser
SHOTS = Path("/tmp/shots/mail")
PHONE = 390

# Long enough that no link in any mail fits a phone's width unbroken.
LONG_BASE = "https://newsletter.example-with-a-rather-long-domain-name.org/weekly-tips-for-you"
LONG_NAME = "Ada Augusta King, Countess of Lovelace and first programmer of them all"
BODY = f"""Here is a link nobody shortened:
{LONG_BASE}/archive/{"a-very-long-slug-" * 6}end

And a word that never ends: {"Donaudampfschifffahrtsgesellschaft" * 3}.

```
git log --pretty=format:'%h %ad | %s%d [%an]' --graph --date=short --all --decorate=full
```

| option | what it does | when to use it | example |
|---|---|---|---|
| `--graph` | draws the branches | always | `git log --graph --oneline --all --decorate` |
| `--stat` | counts lines | reviews | `git log --stat --since=yesterday --author=ada` |

- [a link whose words are long](https://git-scm.com/docs/git-log#Documentation/git-log.txt---prettyltformatgt)
"""


@pytest.fixture
def mails(make_app: Any, inbox: Any) -> dict[str, EmailMessage]:
    """A confirmation, a welcome and an issue, every link in them long."""
    app = make_app(BASE_URL=LONG_BASE, WEEKLY_SLOT="every tuesday at 08:30 in Europe/Berlin")
    with app.app_context():
        truncate_all()
        # The name typed at sign-up rides in the confirmation token: a long link.
        pending = Subscriber(
            email="someone-with-a-long-address@example.com",
            status=SubscriberStatus.PENDING,
            confirm_name=LONG_NAME,
        )
        reader = Subscriber(
            email="ada@example.com", name=LONG_NAME, status=SubscriberStatus.CONFIRMED
        )
        db.session.add_all([pending, reader])
        db.session.commit()
        send_confirmation(pending.id)
        send_welcome(reader.id)
        issue = create_issue("A tip about git log, with a title long enough to wrap", BODY)
        send_issue(issue.id)
        db.session.commit()
        build_worker(app).work(burst=True, with_scheduler=False)
        by_subject = {m["Subject"]: m for m in inbox.wait_for(3)}
        db.session.remove()
    return {
        name: next(m for s, m in by_subject.items() if s.startswith(start))
        for name, start in (
            ("confirm", "Please confirm"),
            ("welcome", "Welcome"),
            ("issue", "A tip"),
        )
    }


@pytest.mark.parametrize("name", ["confirm", "welcome", "issue"])
def test_every_mail_fits_a_phone_and_looks_right_wide(page, mails, name):
    page.route("**/*", lambda route: route.abort())  # a mail fetches nothing (and no network)
    html = html_part(mails[name])
    assert LONG_BASE in html
    SHOTS.mkdir(parents=True, exist_ok=True)
    for width in (PHONE, 1280):
        page.set_viewport_size({"width": width, "height": 900})
        page.set_content(html)
        scroll = page.evaluate("document.documentElement.scrollWidth")
        if width == PHONE:
            assert scroll <= PHONE, f"{name}: {scroll} px wide at {PHONE} px"
            # Every link stays inside the card, not only the page as a whole.
            widest = page.evaluate(
                "Math.max(...[...document.querySelectorAll('a')]"
                ".map(a => a.getBoundingClientRect().right))"
            )
            assert widest <= PHONE, f"{name}: a link reaches {widest} px"
        page.screenshot(path=str(SHOTS / f"{name}-{width}.png"), full_page=True)
