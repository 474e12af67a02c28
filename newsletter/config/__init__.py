"""Settings from the environment, validated once, with one clear error per bad value.

``load_settings`` reads them into one frozen, typed ``Settings``; the app keeps it
(``newsletter.extensions.settings``) and gives Flask only the keys Flask reads (``flask_config``).
How each kind of value is parsed lives in ``newsletter.config.parse``.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from newsletter.config.parse import (
    DEV_MAIL_PORT,
    MAILBOX_PORTS,
    SMTP_SECURITY_CHOICES,
    WEEKDAYS,
    ConfigError,
    Feed,
    Mailbox,
    WeeklySlot,
    parse_mailbox,
    parse_nameserver,
    parse_weekly_slot,
    read_allow_hosts,
    read_bool,
    read_bounce_address,
    read_database_url,
    read_dkim,
    read_editor_sessions,
    read_feed,
    read_float,
    read_int,
    read_language,
    read_mail_from,
    read_origins,
    read_provider_hooks,
    read_rate,
    read_secret_key,
    read_trusted_proxies,
    read_url,
)
from newsletter.config.storage import S3_NAMES, Bucket, read_bucket

__all__ = [
    "DEV_MAIL_PORT",
    "ENV_NAMES",
    "MAILBOX_PORTS",
    "SMTP_SECURITY_CHOICES",
    "WEEKDAYS",
    "ConfigError",
    "Bucket",
    "Feed",
    "Mailbox",
    "Settings",
    "WeeklySlot",
    "environ",
    "flask_config",
    "load_settings",
    "parse_mailbox",
    "parse_nameserver",
    "parse_weekly_slot",
]

# Every request body, and each text field of a multipart form (the import page admits a
# larger body for its CSV file: web/editor/imports.py).
MAX_CONTENT_LENGTH = 10 * 1024 * 1024
MAX_FORM_MEMORY_SIZE = 64 * 1024

# The environment variables load_settings reads (INSTANCE_PATH is the app's own folder).
ENV_NAMES = frozenset(
    (
        "INSTANCE_PATH",
        "NEWSLETTER_ENV",
        "SECRET_KEY",
        "SECRET_KEY_FALLBACKS",
        "DATABASE_URL",
        "REDIS_URL",
        "SMTP_HOST",
        "SMTP_PORT",
        "SMTP_USERNAME",
        "SMTP_PASSWORD",
        "SMTP_SECURITY",
        "SMTP_TIMEOUT",
        "MAIL_FROM",
        "BASE_URL",
        "NEWSLETTER_NAME",
        "POSTAL_ADDRESS",
        "SEND_RATE",
        "CONFIRM_MAX_AGE",
        "EMAIL_CHECK_DNS",
        "WEEKLY_SLOT",
        "SLOT_GRACE",
        "BATCH_SIZE",
        "SEND_LEASE_SECONDS",
        "RECONCILE_INTERVAL",
        "SEND_MAX_ATTEMPTS",
        "SEND_RETRY_BASE",
        "SEND_PAUSE_AFTER",
        "BOUNCE_SOFT_LIMIT",
        "SUBSCRIBE_RATE_LIMIT",
        "EMBED_ORIGINS",
        "NEWSLETTER_LANGUAGE",
        "WEBHOOK_RETRY_BASE",
        "WEBHOOK_ALLOW_HOSTS",
        "TRUSTED_PROXIES",
        "BOUNCE_ADDRESS",
        "BOUNCE_MAILBOX",
        "BOUNCE_POLL_INTERVAL",
        "DNS_NAMESERVER",
        "SNS_TOPIC_ARNS",
        "SNS_CERT_HOSTS",
        "MAILGUN_WEBHOOK_KEY",
        "POSTMARK_WEBHOOK_USER",
        "POSTMARK_WEBHOOK_PASSWORD",
        "DKIM_DOMAIN",
        "DKIM_SELECTOR",
        "DKIM_PRIVATE_KEY",
        "EDITOR_SESSION_IDLE",
        "EDITOR_SESSION_MAX",
        "IMPORT_MAX_BYTES",
        "FEED_URL",
        "FEED_MODE",
        "FEED_POLL_INTERVAL",
        "FEED_ALLOW_HOSTS",
        "EVERGREEN_INTERVAL",
        *S3_NAMES,
    )
)


@dataclass(frozen=True, slots=True)
class Settings:
    """Every setting of the product, read and checked once (see ``load_settings``)."""

    environment: str  # NEWSLETTER_ENV: development, production or testing
    instance_path: Path
    secret_key: str = field(repr=False)
    secret_key_fallbacks: tuple[str, ...] = field(repr=False)
    database_url: str  # as SQLAlchemy takes it (postgresql+psycopg://, sqlite:///)
    redis_url: str | None  # None: the embedded Redis in the instance folder
    smtp_host: str
    smtp_port: int
    smtp_username: str | None
    smtp_password: str | None = field(repr=False)
    smtp_security: str  # none, starttls or tls
    smtp_timeout: float
    mail_from: str
    base_url: str  # no trailing slash
    newsletter_name: str
    postal_address: str
    send_rate: float
    confirm_max_age: int
    email_check_dns: bool
    weekly_slot: WeeklySlot | None
    weekly_slot_raw: str
    slot_grace: int
    batch_size: int
    # Delivery engine: a claimed message's lease, how often the reconciler runs, retries.
    send_lease_seconds: float
    reconcile_interval: float
    send_max_attempts: int
    send_retry_base: float
    send_pause_after: int
    bounce_soft_limit: int
    subscribe_rate_limit: tuple[int, int]  # (count, seconds)
    embed_origins: tuple[str, ...]
    language: str  # NEWSLETTER_LANGUAGE
    webhook_retry_base: float
    webhook_allow_hosts: frozenset[str]
    trusted_proxies: int
    bounce_address: str | None
    mailbox: Mailbox | None  # BOUNCE_MAILBOX
    bounce_poll_interval: float
    dns_nameserver: tuple[str, int] | None
    sns_topic_arns: frozenset[str]
    sns_cert_hosts: frozenset[str]
    mailgun_webhook_key: str | None = field(repr=False)
    postmark_webhook_user: str | None
    postmark_webhook_password: str | None = field(repr=False)
    dkim_domain: str | None
    dkim_selector: str | None
    dkim_private_key: str | None = field(repr=False)
    editor_session_idle: int
    editor_session_max: int
    session_cookie_secure: bool
    # The largest CSV file one import may upload: the import page admits this plus the
    # form around it (web/editor/imports.py). Every other request keeps the limits below.
    import_max_bytes: int
    # FEED_URL, FEED_MODE, FEED_POLL_INTERVAL: the blog the worker polls (None: no feed).
    feed: Feed | None
    # Hosts the feed and the back catalogue's imports may fetch from although internal.
    feed_allow_hosts: frozenset[str]
    max_content_length: int = MAX_CONTENT_LENGTH
    max_form_memory_size: int = MAX_FORM_MEMORY_SIZE
    # A relay that cannot be reached: the first wait before trying again, and the longest.
    send_relay_wait: float = 2.0
    send_relay_wait_max: float = 120.0
    # SEND_RECORD_FLUSH_WAIT: on PostgreSQL, wait for each delivery record's WAL flush.
    send_record_flush_wait: bool = False
    # EVERGREEN_INTERVAL: seconds between two back-catalogue tips for a reader in the sequence.
    evergreen_interval: int = 604800
    # S3_*: the bucket issue images go to (None: the instance folder).
    image_bucket: Bucket | None = None

    @property
    def production(self) -> bool:
        """Say whether this is a production instance (NEWSLETTER_ENV=production)."""
        return self.environment == "production"

    @property
    def testing(self) -> bool:
        """Say whether this instance runs the tests (NEWSLETTER_ENV=testing)."""
        return self.environment == "testing"


def load_settings(env: Mapping[str, str], instance_path: Path) -> Settings:
    """Read the settings from environment-like ``env``; raise ConfigError naming a bad one."""
    environment = env.get("NEWSLETTER_ENV", "development").strip().lower() or "development"
    if environment not in ("development", "production", "testing"):
        raise ConfigError(
            f"NEWSLETTER_ENV: expected development, production or testing, got {environment!r}"
        )
    production = environment == "production"
    secret_key = read_secret_key(env, production, instance_path)

    security = env.get("SMTP_SECURITY", "").strip().lower() or "none"
    if security not in SMTP_SECURITY_CHOICES:
        raise ConfigError(
            f"SMTP_SECURITY: expected one of {', '.join(SMTP_SECURITY_CHOICES)}, got {security!r}"
        )
    default_port = {"none": 25, "starttls": 587, "tls": 465}[security]
    smtp_host = env.get("SMTP_HOST", "").strip()
    if not smtp_host:
        if production:
            raise ConfigError("SMTP_HOST: required when NEWSLETTER_ENV=production")
        smtp_host, default_port = "127.0.0.1", DEV_MAIL_PORT

    base_url = read_url(env, "BASE_URL", ("http", "https")) or "http://127.0.0.1:5000"
    if not urlsplit(base_url).netloc:
        raise ConfigError(f"BASE_URL: needs a host, got {base_url!r}")

    redis_url = read_url(env, "REDIS_URL", ("redis", "rediss", "unix"))

    fallbacks = [k.strip() for k in env.get("SECRET_KEY_FALLBACKS", "").split(",") if k.strip()]
    slot_raw = env.get("WEEKLY_SLOT", "")
    dkim = read_dkim(env)
    # In the order the settings were always read, so the first bad one is the one named.
    database_url = read_database_url(env, instance_path)
    smtp_port = read_int(env, "SMTP_PORT", default_port, minimum=1)
    smtp_timeout = read_float(env, "SMTP_TIMEOUT", 30.0)
    mail_from = read_mail_from(env)
    send_rate = read_float(env, "SEND_RATE", 0.0)
    confirm_max_age = read_int(env, "CONFIRM_MAX_AGE", 7 * 24 * 3600, minimum=1)
    email_check_dns = read_bool(env, "EMAIL_CHECK_DNS", False)
    weekly_slot = parse_weekly_slot(slot_raw) if slot_raw.strip() else None
    slot_grace = read_int(env, "SLOT_GRACE", 6 * 3600)
    batch_size = read_int(env, "BATCH_SIZE", 500, minimum=1)
    send_lease_seconds = read_float(env, "SEND_LEASE_SECONDS", 30.0)
    reconcile_interval = read_float(env, "RECONCILE_INTERVAL", 30.0)
    send_max_attempts = read_int(env, "SEND_MAX_ATTEMPTS", 6, minimum=1)
    send_retry_base = read_float(env, "SEND_RETRY_BASE", 60.0)
    send_pause_after = read_int(env, "SEND_PAUSE_AFTER", 50, minimum=1)
    send_relay_wait = max(read_float(env, "SEND_RELAY_WAIT", 2.0), 0.01)
    send_relay_wait_max = max(read_float(env, "SEND_RELAY_WAIT_MAX", 120.0), send_relay_wait)
    send_record_flush_wait = read_bool(env, "SEND_RECORD_FLUSH_WAIT", False)
    bounce_soft_limit = read_int(env, "BOUNCE_SOFT_LIMIT", 3, minimum=1)
    subscribe_rate_limit = read_rate(env, "SUBSCRIBE_RATE_LIMIT", "60/600")
    embed_origins = read_origins(env, "EMBED_ORIGINS")
    language = read_language(env)
    webhook_retry_base = read_float(env, "WEBHOOK_RETRY_BASE", 30.0)
    webhook_allow_hosts = read_allow_hosts(env)
    trusted_proxies = read_trusted_proxies(env)
    bounce_address = read_bounce_address(env)
    mailbox = parse_mailbox(env.get("BOUNCE_MAILBOX", ""))
    bounce_poll_interval = read_float(env, "BOUNCE_POLL_INTERVAL", 60.0)
    dns_nameserver = parse_nameserver(env.get("DNS_NAMESERVER", ""))
    hooks = read_provider_hooks(env)
    session_idle, session_max = read_editor_sessions(env)
    evergreen_interval = read_int(env, "EVERGREEN_INTERVAL", 604800, minimum=1)

    return Settings(
        environment=environment,
        instance_path=instance_path,
        secret_key=secret_key,
        secret_key_fallbacks=tuple(fallbacks),
        database_url=database_url,
        redis_url=redis_url,
        smtp_host=smtp_host,
        smtp_port=smtp_port,
        smtp_username=env.get("SMTP_USERNAME", "") or None,
        smtp_password=env.get("SMTP_PASSWORD", "") or None,
        smtp_security=security,
        smtp_timeout=smtp_timeout,
        mail_from=mail_from,
        base_url=base_url.rstrip("/"),
        newsletter_name=env.get("NEWSLETTER_NAME", "").strip() or "Tip of the Week",
        postal_address=env.get("POSTAL_ADDRESS", "").strip(),
        send_rate=send_rate,
        confirm_max_age=confirm_max_age,
        email_check_dns=email_check_dns,
        weekly_slot=weekly_slot,
        weekly_slot_raw=slot_raw.strip(),
        slot_grace=slot_grace,
        batch_size=batch_size,
        send_lease_seconds=send_lease_seconds,
        reconcile_interval=reconcile_interval,
        send_max_attempts=send_max_attempts,
        send_retry_base=send_retry_base,
        send_pause_after=send_pause_after,
        send_relay_wait=send_relay_wait,
        send_relay_wait_max=send_relay_wait_max,
        send_record_flush_wait=send_record_flush_wait,
        evergreen_interval=evergreen_interval,
        bounce_soft_limit=bounce_soft_limit,
        subscribe_rate_limit=subscribe_rate_limit,
        embed_origins=embed_origins,
        language=language,
        webhook_retry_base=webhook_retry_base,
        webhook_allow_hosts=webhook_allow_hosts,
        trusted_proxies=trusted_proxies,
        bounce_address=bounce_address,
        mailbox=mailbox,
        bounce_poll_interval=bounce_poll_interval,
        dns_nameserver=dns_nameserver,
        sns_topic_arns=hooks.sns_topic_arns,
        sns_cert_hosts=hooks.sns_cert_hosts,
        mailgun_webhook_key=hooks.mailgun_webhook_key,
        postmark_webhook_user=hooks.postmark_webhook_user,
        postmark_webhook_password=hooks.postmark_webhook_password,
        dkim_domain=dkim.domain,
        dkim_selector=dkim.selector,
        dkim_private_key=dkim.private_key,
        editor_session_idle=session_idle,
        editor_session_max=session_max,
        session_cookie_secure=production or base_url.startswith("https://"),
        import_max_bytes=read_int(env, "IMPORT_MAX_BYTES", 20 * 1024 * 1024, minimum=1),
        feed=read_feed(env, weekly_slot is not None),
        feed_allow_hosts=read_allow_hosts(env, "FEED_ALLOW_HOSTS"),
        image_bucket=read_bucket(env),
    )


def flask_config(settings: Settings) -> dict[str, Any]:
    """Return the keys Flask and its extensions read from ``app.config``, from ``settings``."""
    return {
        "SECRET_KEY": settings.secret_key,
        "SECRET_KEY_FALLBACKS": list(settings.secret_key_fallbacks),
        "SQLALCHEMY_DATABASE_URI": settings.database_url,
        "SESSION_COOKIE_HTTPONLY": True,
        "SESSION_COOKIE_SAMESITE": "Lax",
        "SESSION_COOKIE_SECURE": settings.session_cookie_secure,
        "MAX_CONTENT_LENGTH": settings.max_content_length,
        "MAX_FORM_MEMORY_SIZE": settings.max_form_memory_size,
        "WTF_CSRF_TIME_LIMIT": None,
        "TESTING": settings.testing,
    }


def environ() -> dict[str, str]:
    """Return a copy of the process environment."""
    return dict(os.environ)
