"""DKIM: an issue copy is signed, and dkimpy verifies it against the public key."""

from __future__ import annotations

import base64

import dkim
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from newsletter.delivery.message import issue_message
from newsletter.extensions import db
from newsletter.issues.actions import create_issue
from newsletter.services import mailer


def test_issue_copies_carry_a_dkim_signature_that_verifies(make_app):
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.TraditionalOpenSSL,
        serialization.NoEncryption(),
    ).decode()
    public = key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    app = make_app(DKIM_DOMAIN="example.org", DKIM_SELECTOR="tips", DKIM_PRIVATE_KEY=pem)
    with app.app_context():
        issue = create_issue("Signed tip", "Body with ünïcode")
        data = issue_message(mailer(), issue, b"k").bytes_for(3, "a@example.com", "tok")
        db.session.rollback()
    record = b"v=DKIM1; k=rsa; p=" + base64.b64encode(public)

    def dnsfunc(name: bytes, timeout: int = 5) -> bytes:
        assert name == b"tips._domainkey.example.org."
        return record

    assert data.startswith(b"DKIM-Signature:")
    assert data.count(b"\n") == data.count(b"\r\n") == data.count(b"\r")  # canonical CRLF
    assert dkim.verify(data, dnsfunc=dnsfunc)
    header = data.split(b"\r\n\r\n", 1)[0].decode().replace("\r\n", "")
    h_tag = header.split(" h=", 1)[1].split(";", 1)[0].lower()
    for name in ("from", "subject", "list-unsubscribe", "list-unsubscribe-post"):
        assert name in [h.strip() for h in h_tag.split(":")]
    tampered = data.replace(b"Subject: Signed tip", b"Subject: Signed tap")
    assert not dkim.verify(tampered, dnsfunc=dnsfunc)
