"""Signed links: one salt per purpose, bound to state, valid across a key rotation."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

import pytest
from itsdangerous import Signer

from newsletter.extensions import db, settings
from newsletter.models import SubscriberStatus
from newsletter.subscribers.links import (
    ACCESS_MAX_AGE,
    LEGACY_MANAGE_SALT,
    Access,
    ConfirmClaim,
    TokenError,
    TokenExpired,
    Tokens,
    link_stamp,
)
from tests.helpers.readers import subscriber

OLD = "old-secret-key-that-is-long-enough-0123456789abcdef"
NEW = "new-secret-key-that-is-long-enough-0123456789abcdef"


def test_tokens_round_trip_and_refuse_the_other_purpose():
    t = Tokens(NEW)
    claim = t.read_confirm(t.confirm_token(7, 3), max_age=60)
    assert (claim.subscriber_id, claim.version) == (7, 3)
    assert t.read_unsubscribe(t.unsubscribe_token(7)) == 7
    with pytest.raises(TokenError):
        t.read_unsubscribe(t.confirm_token(7, 3))
    with pytest.raises(TokenError):
        t.read_confirm(t.unsubscribe_token(7), max_age=60)


@pytest.mark.parametrize(
    "mangle", [lambda s: s[:-1], lambda s: s[:10], lambda s: "x" + s, str.upper]
)
def test_tampered_and_truncated_tokens_are_refused(mangle):
    t = Tokens(NEW)
    with pytest.raises(TokenError):
        t.read_confirm(mangle(t.confirm_token(7, 3)), max_age=60)
    with pytest.raises(TokenError):
        t.read_unsubscribe(mangle(t.unsubscribe_token(7)))


def test_an_expired_confirm_token_still_says_whose_it_was():
    t = Tokens(NEW)
    token = t.confirm_token(42, 1, "Zoë Ünal")
    time.sleep(1.1)
    with pytest.raises(TokenExpired) as caught:
        t.read_confirm(token, max_age=0)
    assert caught.value.subscriber_id == 42
    assert caught.value.claim == ConfirmClaim(42, 1, "Zoë Ünal")


def test_a_confirm_token_carries_the_name_typed_and_refuses_anything_else_in_its_place():
    t = Tokens(NEW)
    assert t.read_confirm(t.confirm_token(7, 3, "Ann Lee"), 60) == ConfirmClaim(7, 3, "Ann Lee")
    assert t.read_confirm(t.confirm_token(7, 3, ""), 60) == ConfirmClaim(7, 3, None)
    varied = "".join(chr(0x1F300 + i * 37 % 700) for i in range(100))  # 400 bytes, barely zipped
    longest = t.confirm_token(2**31 - 1, 2**31 - 1, varied)
    assert len(longest) < 800  # public.MAX_TOKEN: the longest name still makes a usable link
    # Signed by us, but not of our shape: refused like a forgery.
    for payload in ([7, 3, 5], [7, 3, ""], [7, 3, "x", "y"], [7, True], ["7", 3]):
        with pytest.raises(TokenError):
            t.read_confirm(t._confirm.dumps(payload), 60)


def test_tokens_signed_with_an_old_key_work_after_rotation_but_not_after_it_is_dropped():
    old_token = Tokens(OLD).unsubscribe_token(5)
    rotated = Tokens(NEW, [OLD])
    assert rotated.read_unsubscribe(old_token) == 5
    assert rotated.read_confirm(Tokens(OLD).confirm_token(5, 2), 60).version == 2
    # New links are signed with the new key only.
    with pytest.raises(TokenError):
        Tokens(OLD).read_unsubscribe(rotated.unsubscribe_token(5))
    with pytest.raises(TokenError):
        Tokens(NEW).read_unsubscribe(old_token)


def test_a_link_from_before_the_rotation_confirms_through_the_app(make_app, make_subscriber):
    sub = make_subscriber("rot@example.com", status="pending")
    link = f"/confirm/{Tokens(OLD).confirm_token(sub.id, sub.version)}"
    db.session.commit()
    rotated = make_app(SECRET_KEY=NEW, SECRET_KEY_FALLBACKS=f"{OLD}, another-old-key")
    assert settings(rotated).secret_key_fallbacks == (OLD, "another-old-key")
    assert rotated.test_client().post(link).status_code == 200
    assert subscriber("rot@example.com").status is SubscriberStatus.CONFIRMED


def test_sessions_signed_with_an_old_key_are_read_after_rotation(make_app):
    before = make_app(SECRET_KEY=OLD)
    after = make_app(SECRET_KEY=NEW, SECRET_KEY_FALLBACKS=OLD)
    dropped = make_app(SECRET_KEY=NEW)
    cookie = before.session_interface.get_signing_serializer(before).dumps({"who": "reader"})

    def read(app):
        serializer = app.session_interface.get_signing_serializer(app)
        try:
            return serializer.loads(cookie)
        except Exception:
            return None

    assert read(after) == {"who": "reader"}
    assert read(dropped) is None


@pytest.mark.parametrize("fallbacks", [[], ["an-old-key"]])
def test_the_senders_fast_unsubscribe_tokens_are_the_same_tokens(fallbacks):
    tokens = Tokens("the-current-key", fallbacks)
    make = tokens.unsubscribe_token_maker()
    ids = [0, 1, 7, 42, 999, 123456, 999_999_999, 1_000_000_000, 10**12, 111_111_111_111]
    ids += list(range(1000, 30000, 37))
    for sid in ids:
        token = make(sid)
        assert token == tokens.unsubscribe_token(sid)
        assert tokens.read_unsubscribe(token) == sid


@pytest.mark.parametrize("fallbacks", [[], ["an-old-key"]])
def test_the_senders_fast_manage_tokens_are_the_same_tokens(fallbacks):
    tokens = Tokens("the-current-key", fallbacks)
    make = tokens.manage_token_maker()
    when = datetime(2026, 12, 1, 16, 58, 2, 123456, tzinfo=UTC)
    for sid in [0, 1, 42, 999_999_999, 1_000_000_000, *range(1000, 9000, 37)]:
        at = when + timedelta(microseconds=sid * 7919)
        token = make(sid, at, f"r{sid}@example.com")
        assert token == tokens.manage_token(sid, at, f"r{sid}@example.com")
        claim = tokens.read_manage(token)
        assert (claim.subscriber_id, claim.stamp) == (sid, link_stamp(at))
        assert claim.check(f"r{sid}@example.com") is Access.PLAIN
        assert claim.check(f"r{sid + 1}@example.com") is None


def test_a_manage_token_is_no_unsubscribe_token_and_the_reverse():
    tokens = Tokens("the-current-key")
    with pytest.raises(TokenError):
        tokens.read_manage(tokens.unsubscribe_token(5))
    with pytest.raises(TokenError):
        tokens.read_unsubscribe(tokens.manage_token(5, datetime.now(UTC), "a@example.com"))


def test_page_links_name_the_address_and_the_mailed_ones_expire(monkeypatch):
    tokens = Tokens("the-current-key", ["an-old-key"])
    at = datetime(2026, 12, 1, 16, 58, 2, 123456, tzinfo=UTC)
    page = tokens.manage_token(5, at, "a@example.com")
    assert "a@example.com" not in page and "example" not in page
    fresh = tokens.access_token(5, at, "a@example.com")
    assert "example" not in fresh
    assert tokens.read_manage(fresh).check("a@example.com") is Access.FRESH
    assert tokens.read_manage(fresh).check("b@example.com") is None
    # Signed by the key before the current one: still good.
    old_key = Tokens("an-old-key")
    assert (
        tokens.read_manage(old_key.manage_token(5, at, "a@example.com")).check("a@example.com")
        is Access.PLAIN
    )
    # An hour later, the mailed link opens only what the ordinary one does.
    real = time.time
    monkeypatch.setattr("time.time", lambda: real() - ACCESS_MAX_AGE - 5)
    late = tokens.access_token(5, at, "a@example.com")
    monkeypatch.undo()
    assert tokens.read_manage(late).check("a@example.com") is Access.PLAIN
    assert tokens.read_manage(late).check("b@example.com") is None


def test_page_links_mailed_before_they_named_the_address_still_read():
    tokens = Tokens("the-current-key")
    at = datetime(2026, 12, 1, 16, 58, 2, 123456, tzinfo=UTC)
    legacy = Signer(["the-current-key"], salt=LEGACY_MANAGE_SALT)
    token = legacy.sign(f"5-{link_stamp(at)}").decode()
    claim = tokens.read_manage(token)
    assert claim.legacy and claim.subscriber_id == 5
    assert claim.check("anyone@example.com") is Access.PLAIN  # the page checks no change since
