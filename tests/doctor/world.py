"""The DNS records of a healthy example.com setup, and the DKIM keys they publish."""

from __future__ import annotations

import base64

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from tests.doctor.dns_server import Zone


def private_pem(key: rsa.RSAPrivateKey) -> str:
    """Return ``key`` as DKIM_PRIVATE_KEY takes it."""
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.TraditionalOpenSSL,
        serialization.NoEncryption(),
    ).decode()


def public_record(key: rsa.RSAPrivateKey) -> str:
    """Return the TXT record that publishes ``key``'s public half for DKIM."""
    der = key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return "v=DKIM1; k=rsa; p=" + base64.b64encode(der).decode()


def publish_everything(zone: Zone, key: rsa.RSAPrivateKey) -> None:
    """Publish SPF for a relay on 127.0.0.1, an MX, DKIM selector `tips` and DMARC."""
    zone.txt("example.com", "v=spf1 ip4:127.0.0.1 -all")
    zone.mx("example.com", "mx.example.com")
    zone.a("mx.example.com", "192.0.2.10")
    zone.txt("tips._domainkey.example.com", public_record(key))
    zone.txt("_dmarc.example.com", "v=DMARC1; p=reject; rua=mailto:dmarc@example.com")
