"""Subscriber search through the trigram indexes, and counts per status kept by the database."""

from __future__ import annotations

import re

import sqlalchemy as sa

from newsletter.extensions import db
from newsletter.models import Subscriber
from newsletter.subscribers import search
from newsletter.subscribers.imports import import_csv
from newsletter.subscribers.signup import subscribe
from newsletter.subscribers.state import bounce, confirm, erase, unsubscribe
from newsletter.web.editor import subscribers as people
from tests.helpers import emails_on
from tests.helpers.editors import editor_client


def walk(client, url: str, rel: str = "next") -> list[list[str]]:
    """Follow the Older (or Newer) links from ``url``; return the addresses of every page."""
    pages = []
    while url:
        html = client.get(url).text
        pages.append(emails_on(html))
        match = re.search(rf'<a href="(\?[^"]+)" rel="{rel}">', html)
        url = "/editor/subscribers" + match.group(1).replace("&amp;", "&") if match else None
    return pages


def shown_counts(client) -> dict[str, int]:
    html = client.get("/editor/subscribers").text
    return {
        status: int(n)
        for status, n in re.findall(r'data-status="(\w+)">\w+ <strong>(\d+)</strong>', html)
    }


def test_search_pages_find_every_match_once_near_and_far(app, monkeypatch):
    # A small window and page, so a walk crosses from the nearby scan to the index.
    monkeypatch.setattr(search, "NEAR_WINDOW", 7)
    monkeypatch.setattr(people, "PAGE_SIZE", 4)
    names = []
    for i in range(60):
        # Matches only among the oldest and a few of the newest: the far part needs the index.
        tag = "Zebra" if i < 20 or i in (55, 58) else "Other"
        names.append((f"p{i:02}@example.com", f"{tag} Person {i}"))
    db.session.execute(
        sa.insert(Subscriber),
        [
            {"email": e, "name": n, "status": "confirmed" if i % 3 else "pending"}
            for i, (e, n) in enumerate(names)
        ],
    )
    db.session.commit()
    client = editor_client(app)
    zebras = [e for e, n in reversed(names) if "Zebra" in n]

    pages = walk(client, "/editor/subscribers?q=zEBRA")
    assert [e for p in pages for e in p] == zebras
    assert all(len(p) == 4 for p in pages[:-1])
    # And back: Newer from the last page gives exactly the page before it.
    html = client.get("/editor/subscribers?q=zebra").text
    while match := re.search(r'<a href="(\?[^"]+)" rel="next">', html):
        html = client.get("/editor/subscribers" + match.group(1).replace("&amp;", "&")).text
    newer = re.search(r'<a href="(\?[^"]+)" rel="prev">', html)
    back = client.get("/editor/subscribers" + newer.group(1).replace("&amp;", "&")).text
    assert emails_on(back) == pages[-2]

    pending = walk(client, "/editor/subscribers?q=zebra&status=pending")
    assert [e for p in pending for e in p] == [e for e in zebras if int(e[1:3]) % 3 == 0]
    assert walk(client, "/editor/subscribers?q=p05@") == [["p05@example.com"]]
    assert walk(client, "/editor/subscribers?q=nobody-here") == [[]]


def test_search_terms_with_quotes_and_wildcards_are_taken_literally(app, make_subscriber):
    make_subscriber("o.brien@example.com", "confirmed", 'Pat "Paddy" 100%_sure')
    make_subscriber("other@example.com", "confirmed", "Pat Paddy 100 sure")
    client = editor_client(app)
    assert emails_on(client.get('/editor/subscribers?q="paddy"').text) == ["o.brien@example.com"]
    assert emails_on(client.get("/editor/subscribers?q=100%25_s").text) == ["o.brien@example.com"]
    assert emails_on(client.get("/editor/subscribers?q=O.BRIEN@").text) == ["o.brien@example.com"]


def test_search_follows_renames_and_erasure(app, make_subscriber):
    sub = make_subscriber("ada@example.com", "confirmed", "Ada Lovelace")
    client = editor_client(app)
    sub.name = "Ada King"
    db.session.commit()
    assert emails_on(client.get("/editor/subscribers?q=lovelace").text) == []
    assert emails_on(client.get("/editor/subscribers?q=king").text) == ["ada@example.com"]
    erase(db.session, "ada@example.com")
    db.session.commit()
    assert emails_on(client.get("/editor/subscribers?q=ada").text) == []


def test_counts_per_status_follow_every_kind_of_change(app, monkeypatch):
    # Fold PostgreSQL's delta rows often, so folding happens between the checks below.
    monkeypatch.setattr(search, "FOLD_AFTER", 3)
    client = editor_client(app)
    assert shown_counts(client) == {"pending": 0, "confirmed": 0, "unsubscribed": 0, "bounced": 0}
    ids = [subscribe(db.session, f"r{i}@example.com").subscriber_id for i in range(5)]
    db.session.commit()
    for i in ids[:3]:
        confirm(db.session, i, db.session.get(Subscriber, i).version)
    unsubscribe(db.session, ids[0])
    bounce(db.session, ids[1])
    db.session.commit()
    assert shown_counts(client) == {"pending": 2, "confirmed": 1, "unsubscribed": 1, "bounced": 1}

    subscribe(db.session, "r0@example.com")  # asks to come back: no change until confirmed
    db.session.commit()
    assert shown_counts(client) == {"pending": 2, "confirmed": 1, "unsubscribed": 1, "bounced": 1}
    confirm(db.session, ids[0], db.session.get(Subscriber, ids[0]).version)  # back from the link
    erase(db.session, "r3@example.com")
    import_csv(db.session(), "email\nnew@example.com\nr4@example.com\n", confirmed=True)
    db.session.commit()
    assert shown_counts(client) == {"pending": 0, "confirmed": 4, "unsubscribed": 0, "bounced": 1}

    # A bulk statement, as an operator's SQL or the bench generator would run.
    db.session.execute(
        sa.insert(Subscriber),
        [{"email": f"b{i}@example.com", "name": "", "status": "bounced"} for i in range(300)],
    )
    db.session.execute(sa.delete(Subscriber).where(Subscriber.email.like("b1%")))
    db.session.commit()
    counts = shown_counts(client)
    assert counts["bounced"] == 1 + 300 - 111
    actual = dict(
        db.session.execute(sa.select(Subscriber.status, sa.func.count()).group_by("status")).all()
    )
    assert counts == {"pending": 0, "unsubscribed": 0} | {s.value: n for s, n in actual.items()}
