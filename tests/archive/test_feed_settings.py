"""FEED_URL, FEED_MODE, FEED_POLL_INTERVAL, FEED_ALLOW_HOSTS: read once, one clear error each."""

from __future__ import annotations

import pytest

from newsletter.archive.sources import fetching_for
from newsletter.config import ConfigError
from tests.helpers import settings_from

SLOT = "every monday at 09:00 in Europe/Berlin"


def test_no_feed_by_default_and_the_documented_defaults():
    assert settings_from().feed is None
    feed = settings_from(FEED_URL="https://blog.example.org/feed").feed
    assert feed is not None
    assert (feed.url, feed.mode, feed.interval) == ("https://blog.example.org/feed", "draft", 900)
    ready = settings_from(FEED_URL="https://b.example/f", FEED_MODE="READY", WEEKLY_SLOT=SLOT)
    assert ready.feed is not None and ready.feed.mode == "ready"


@pytest.mark.parametrize(
    ("env", "named"),
    [
        ({"FEED_URL": "ftp://blog.example.org/feed"}, "FEED_URL: expected a URL starting with"),
        ({"FEED_URL": "https:///feed"}, "FEED_URL: needs a host"),
        ({"FEED_MODE": "sometimes"}, "FEED_MODE: expected draft or ready"),
        ({"FEED_URL": "https://b.example/f", "FEED_MODE": "ready"}, "WEEKLY_SLOT is not set"),
        ({"FEED_POLL_INTERVAL": "0"}, "FEED_POLL_INTERVAL: must be at least 1 second"),
        ({"FEED_POLL_INTERVAL": "often"}, "FEED_POLL_INTERVAL: expected a number"),
        ({"FEED_ALLOW_HOSTS": "not a host!"}, "FEED_ALLOW_HOSTS: expected host names"),
    ],
)
def test_a_bad_feed_setting_is_named(env, named):
    with pytest.raises(ConfigError) as info:
        settings_from(**env)
    assert named in str(info.value)


def test_the_feeds_own_host_is_trusted_and_others_only_when_named():
    found = settings_from(FEED_URL="http://LOCALHOST:2368/rss/", FEED_ALLOW_HOSTS="10.0.0.5")
    assert fetching_for(found).allow == frozenset({"localhost", "10.0.0.5"})
    assert fetching_for(settings_from()).allow == frozenset()
