"""Reader links: every URL a mail holds, built from BASE_URL in one place, routed by the app."""

from __future__ import annotations

from urllib.parse import urlsplit

import pytest

from newsletter.extensions import settings
from newsletter.mail.urls import ONE_CLICK, SAMPLE_TOKEN, ReaderLinks
from newsletter.services import mailer

BASE = "https://tips.example.org/news"


def test_every_reader_url_is_base_url_plus_its_path():
    links = ReaderLinks(BASE)
    assert links.home == BASE + "/"
    assert links.archive == BASE + "/archive"
    assert links.issue("first-tip") == BASE + "/archive/first-tip"
    assert links.confirm("c.tok") == BASE + "/confirm/c.tok"
    assert links.unsubscribe("u.tok") == BASE + "/unsubscribe/u.tok"
    assert links.manage("m.tok") == BASE + "/manage/m.tok"
    assert links.manage_address("a.tok") == BASE + "/manage/address/a.tok"
    assert links.sample_unsubscribe == BASE + "/unsubscribe/sample-token"
    assert links.sample_manage == BASE + "/manage/sample-token"


def test_the_prefixes_the_send_path_splices_into_give_the_same_urls():
    links = ReaderLinks(BASE)
    assert links.unsubscribe_prefix + "u.tok" == links.unsubscribe("u.tok")
    assert links.manage_prefix + "m.tok" == links.manage("m.tok")


def test_list_unsubscribe_headers_are_the_one_click_pair():
    assert ReaderLinks(BASE).list_unsubscribe_headers("u.tok") == {
        "List-Unsubscribe": f"<{BASE}/unsubscribe/u.tok>",
        "List-Unsubscribe-Post": "List-Unsubscribe=One-Click",
    }
    assert ONE_CLICK == "List-Unsubscribe=One-Click"


def test_reader_links_are_a_frozen_value():
    links = ReaderLinks(BASE)
    assert links == ReaderLinks(BASE)
    with pytest.raises(AttributeError):
        links.base_url = "http://elsewhere.test"  # type: ignore[misc]


def test_each_reader_url_lands_on_the_page_the_app_routes_there(app):
    links = mailer(app).links
    assert links.base_url == settings(app).base_url
    routes = app.url_map.bind(urlsplit(links.base_url).netloc)
    expected = {
        links.home: ("public.index", {}),
        links.archive: ("archive.index", {}),
        links.issue("first-tip"): ("archive.show", {"key": "first-tip"}),
        links.confirm("tok"): ("public.confirm_page", {"token": "tok"}),
        links.unsubscribe("tok"): ("manage.unsubscribe_page", {"token": "tok"}),
        links.manage("tok"): ("manage.manage_page", {"token": "tok"}),
        links.manage_address("tok"): ("manage.address_page", {"token": "tok"}),
        links.sample_manage: ("manage.manage_page", {"token": SAMPLE_TOKEN}),
    }
    for url, endpoint in expected.items():
        assert routes.match(urlsplit(url).path, method="GET") == endpoint, url
    # One-click unsubscribing is a POST to the very URL in the header.
    assert routes.match(urlsplit(links.unsubscribe("tok")).path, method="POST") == (
        "manage.unsubscribe_submit",
        {"token": "tok"},
    )
