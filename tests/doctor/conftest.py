"""Fixtures for the doctor: a real DNS server, test certificates, relays, real settings."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric import rsa

from newsletter.config import Settings, load_settings
from newsletter.doctor import Lookup
from tests.doctor.dns_server import DnsServer, SilentDns, Zone
from tests.doctor.relays import Relay
from tests.doctor.world import private_pem
from tests.helpers.tls import Certificates, make_certificates


@pytest.fixture(scope="session")
def dns_server() -> Iterator[DnsServer]:
    server = DnsServer()
    yield server
    server.stop()


@pytest.fixture
def zone(dns_server: DnsServer) -> Zone:
    """The test DNS server's records, empty at the start of each test."""
    dns_server.zone.clear()
    return dns_server.zone


@pytest.fixture
def lookup(dns_server: DnsServer) -> Lookup:
    """The doctor's DNS, asking only the test server."""
    return Lookup.for_config(None, ("127.0.0.1", dns_server.port), timeout=2.0)


@pytest.fixture
def silent_dns() -> Iterator[SilentDns]:
    server = SilentDns()
    yield server
    server.close()


@pytest.fixture(scope="session")
def certificates(tmp_path_factory: pytest.TempPathFactory) -> Certificates:
    return make_certificates(tmp_path_factory.mktemp("tls"))


@pytest.fixture
def trust_test_ca(certificates: Certificates, monkeypatch: pytest.MonkeyPatch) -> None:
    """Trust the test CA as an operator trusts a private one: SSL_CERT_FILE."""
    monkeypatch.setenv("SSL_CERT_FILE", str(certificates.ca))


@pytest.fixture
def relay() -> Iterator[Callable[..., Relay]]:
    """Start real aiosmtpd relays on demand; all are stopped after the test."""
    started: list[Relay] = []

    def start(*args: Any, **kwargs: Any) -> Relay:
        made = Relay(*args, **kwargs)
        started.append(made)
        return made

    yield start
    for made in started:
        made.stop()


PRODUCTION = {
    "NEWSLETTER_ENV": "production",
    "SECRET_KEY": "a-production-secret-key-of-more-than-32-bytes",
    "BASE_URL": "https://news.example.com",
    "SMTP_HOST": "127.0.0.1",
    "MAIL_FROM": "Example Tips <tips@example.com>",
    "POSTAL_ADDRESS": "1 Example Street, 12345 Sampletown",
    "REDIS_URL": "redis://127.0.0.1:6379/0",
    "DATABASE_URL": "postgresql://news@127.0.0.1/news",
}


@pytest.fixture
def settings(tmp_path: Path) -> Callable[..., Settings]:
    """Build the real settings from production-like environment values and ``env``."""

    def build(**env: str) -> Settings:
        values = {k: v for k, v in {**PRODUCTION, **env}.items() if v is not None}
        return load_settings(values, tmp_path / "instance")

    return build


@pytest.fixture(scope="session")
def dkim_keys() -> tuple[rsa.RSAPrivateKey, rsa.RSAPrivateKey]:
    """Two 2048-bit keys: the one we sign with and another one."""
    return (
        rsa.generate_private_key(public_exponent=65537, key_size=2048),
        rsa.generate_private_key(public_exponent=65537, key_size=2048),
    )


@pytest.fixture
def dkim_pem(dkim_keys: tuple[rsa.RSAPrivateKey, rsa.RSAPrivateKey]) -> str:
    return private_pem(dkim_keys[0])
