"""Signing keys: SECRET_KEY signs, its fallbacks are still read, at every place that signs."""

from __future__ import annotations

import base64
import json

import pytest
from altcha.v1 import solve_challenge

from newsletter.auth import devices
from newsletter.auth.passwords import account_hash
from newsletter.bounces.intake import secrets_of
from newsletter.delivery.message import MessageIds
from newsletter.extensions import get_redis, settings
from newsletter.mail.verp import read_tag, verp_address
from newsletter.signing import serializer_keys, signing_keys
from newsletter.subscribers import proof
from newsletter.subscribers.links import Tokens
from newsletter.web import signup

OLD = "old-secret-key-that-is-long-enough-0123456789abcdef"
OLDER = "older-secret-key-that-is-long-enough-0123456789abcd"
NEW = "new-secret-key-that-is-long-enough-0123456789abcdef"
BOUNCES = "bounces@example.org"


def test_signing_keys_are_newest_first_and_the_serializers_oldest_first():
    assert signing_keys(NEW, [OLD, OLDER]) == [NEW, OLD, OLDER]
    assert serializer_keys(NEW, [OLD, OLDER]) == [OLDER, OLD, NEW]
    for none in (None, [], ()):
        assert signing_keys(NEW, none) == [NEW]
        assert serializer_keys(NEW, none) == [NEW]


@pytest.fixture
def apps(make_app):
    """The same site before a key rotation, after it, and once the old key is dropped."""
    return {
        "before": make_app(SECRET_KEY=OLD),
        "after": make_app(SECRET_KEY=NEW, SECRET_KEY_FALLBACKS=f"{OLD}, {OLDER}"),
        "dropped": make_app(SECRET_KEY=NEW),
    }


def test_reader_tokens_sign_with_the_current_key_and_read_the_old_ones():
    rotated = Tokens(NEW, [OLD, OLDER])
    assert rotated.unsubscribe_token(7) == Tokens(NEW).unsubscribe_token(7)
    assert rotated.read_unsubscribe(Tokens(OLDER).unsubscribe_token(7)) == 7


def test_a_known_device_stays_known_across_a_rotation(apps):
    def make(app):
        with app.test_request_context():
            return devices._serializer().dumps({"a": account_hash("ed@example.org"), "d": "dev"})

    def known(app, cookie):
        headers = {"Cookie": f"{devices.COOKIE}={cookie}"}
        with app.test_request_context(headers=headers):
            return devices.known_device("ed@example.org")

    old_cookie = make(apps["before"])
    assert known(apps["after"], old_cookie) == "dev"
    assert known(apps["dropped"], old_cookie) is None
    # What the rotated site hands out is under the new key alone.
    assert known(apps["dropped"], make(apps["after"])) == "dev"


def test_the_pending_signup_cookie_is_read_across_a_rotation(apps):
    def make(app):
        with app.test_request_context():
            return signup._serializer().dumps(["a-mark"])

    def marks(app, cookie):
        headers = {"Cookie": f"{signup.PENDING_COOKIE}={cookie}"}
        with app.test_request_context("/confirm/x", headers=headers):
            return signup._marks()

    old_cookie = make(apps["before"])
    assert marks(apps["after"], old_cookie) == ["a-mark"]
    assert marks(apps["dropped"], old_cookie) == []
    assert marks(apps["dropped"], make(apps["after"])) == ["a-mark"]


def test_a_proof_of_work_challenged_before_a_rotation_still_counts(apps):
    asked = proof.challenge(OLD)
    solution = solve_challenge(
        asked["challenge"], asked["salt"], asked["algorithm"], asked["maxNumber"]
    )
    assert solution is not None
    fields = {k: asked[k] for k in ("algorithm", "challenge", "salt", "signature")}
    payload = base64.b64encode(json.dumps({**fields, "number": solution.number}).encode())
    for name, counts in (("dropped", False), ("after", True)):
        with apps[name].app_context():
            assert signup._secrets()[0] == NEW  # the current key is tried first
            assert proof.solved(get_redis(), payload.decode(), signup._secrets()) is counts


def test_bounce_tags_and_message_ids_from_before_a_rotation_are_recognised(apps):
    secrets = secrets_of(settings(apps["after"]))
    assert secrets == [NEW.encode(), OLD.encode(), OLDER.encode()]
    tag = verp_address(BOUNCES, 42, OLDER.encode())
    assert read_tag(tag, BOUNCES, secrets) == 42
    assert read_tag(tag, BOUNCES, secrets_of(settings(apps["dropped"]))) is None
    mid = MessageIds(3, OLD.encode(), "example.org")(9)
    assert any(MessageIds(3, s, "example.org")(9) == mid for s in secrets)
