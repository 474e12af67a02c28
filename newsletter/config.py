"""Settings from the environment, validated once, with one clear error per bad value."""

from __future__ import annotations

import ipaddress
import os
import re
import secrets
from collections.abc import Mapping
from dataclasses import dataclass, field
from email.headerregistry import Address
from email.utils import parseaddr
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, unquote, urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from newsletter.i18n import DEFAULT_LANGUAGE, LANGUAGES

SMTP_SECURITY_CHOICES = ("none", "starttls", "tls")
WEEKDAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
DEV_MAIL_PORT = 8025


class ConfigError(Exception):
    """A setting is missing or malformed; the message names it."""


def _int(env: Mapping[str, str], name: str, default: int, minimum: int = 0) -> int:
    raw = env.get(name, "")
    if raw.strip() == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ConfigError(f"{name}: expected a whole number, got {raw!r}") from None
    if value < minimum:
        raise ConfigError(f"{name}: must be at least {minimum}, got {value}")
    return value


def _float(env: Mapping[str, str], name: str, default: float) -> float:
    raw = env.get(name, "")
    if raw.strip() == "":
        return default
    try:
        value = float(raw)
    except ValueError:
        raise ConfigError(f"{name}: expected a number, got {raw!r}") from None
    if value < 0:
        raise ConfigError(f"{name}: must not be negative, got {raw!r}")
    return value


def _bool(env: Mapping[str, str], name: str, default: bool) -> bool:
    raw = env.get(name, "").strip().lower()
    if raw == "":
        return default
    if raw in ("1", "true", "yes", "on"):
        return True
    if raw in ("0", "false", "no", "off"):
        return False
    raise ConfigError(f"{name}: expected on/off (true/false, 1/0), got {raw!r}")


def _rate(env: Mapping[str, str], name: str, default: str) -> tuple[int, int]:
    """Read COUNT/SECONDS (e.g. 60/600) into (60, 600)."""
    raw = env.get(name, "").strip() or default
    try:
        hits, seconds = (int(x) for x in raw.split("/", 1))
    except ValueError:
        raise ConfigError(f"{name}: expected COUNT/SECONDS like 60/600, got {raw!r}") from None
    if hits < 1 or seconds < 1:
        raise ConfigError(f"{name}: both numbers must be at least 1, got {raw!r}")
    return hits, seconds


def _language(env: Mapping[str, str]) -> str:
    raw = env.get("NEWSLETTER_LANGUAGE", "").strip() or DEFAULT_LANGUAGE
    code = raw.replace("-", "_")
    if code not in LANGUAGES:
        raise ConfigError(
            f"NEWSLETTER_LANGUAGE: expected one of {', '.join(LANGUAGES)}, got {raw!r}"
        )
    return code


def _origins(env: Mapping[str, str], name: str) -> tuple[str, ...]:
    """Read comma-separated web origins (scheme://host[:port]), each checked."""
    found: list[str] = []
    for item in env.get(name, "").split(","):
        raw = item.strip().rstrip("/")
        if not raw:
            continue
        parts = urlsplit(raw)
        if parts.scheme not in ("http", "https") or not parts.netloc or parts.path:
            raise ConfigError(
                f"{name}: expected origins like https://blog.example.org, got {raw!r}"
            )
        found.append(f"{parts.scheme}://{parts.netloc.lower()}")
    return tuple(found)


def _url(env: Mapping[str, str], name: str, schemes: tuple[str, ...]) -> str | None:
    raw = env.get(name, "").strip()
    if not raw:
        return None
    try:
        parts = urlsplit(raw)
        parts.port  # noqa: B018 - raises ValueError on a bad port
    except ValueError as exc:
        raise ConfigError(f"{name}: not a valid URL ({exc})") from None
    scheme = parts.scheme.split("+", 1)[0]
    if scheme not in schemes:
        raise ConfigError(
            f"{name}: expected a URL starting with {' or '.join(schemes)}:, got {raw!r}"
        )
    return raw


def _database_url(env: Mapping[str, str], instance_path: Path) -> str:
    url = _url(env, "DATABASE_URL", ("sqlite", "postgresql", "postgres"))
    if url is None:
        return f"sqlite:///{instance_path / 'newsletter.sqlite3'}"
    if url.startswith("postgres://"):  # Heroku-style alias
        url = "postgresql://" + url[len("postgres://") :]
    if url.startswith("postgresql://"):
        url = "postgresql+psycopg://" + url[len("postgresql://") :]
    return url


def _mail_from(env: Mapping[str, str]) -> str:
    raw = env.get("MAIL_FROM", "").strip() or "Tip of the Week <tips@example.org>"
    if "\r" in raw or "\n" in raw:
        raise ConfigError("MAIL_FROM: must be one line")
    display, addr = parseaddr(raw)
    if not addr or "@" not in addr:
        raise ConfigError(
            f"MAIL_FROM: expected an address like 'Name <tips@example.org>', got {raw!r}"
        )
    local, _, domain = addr.rpartition("@")
    try:
        return str(Address(display_name=display, username=local, domain=domain))
    except (ValueError, IndexError):
        raise ConfigError(f"MAIL_FROM: not a valid address: {raw!r}") from None


def parse_weekly_slot(raw: str) -> tuple[int, int, int, ZoneInfo] | None:
    """Parse 'every monday at 09:00 in Europe/Berlin' into (weekday, hour, minute, zone)."""
    words = raw.strip().lower().split()
    if not words:
        return None
    original = raw.strip().split()
    if len(words) != 6 or words[0] != "every" or words[2] != "at" or words[4] != "in":
        raise ConfigError(
            f"WEEKLY_SLOT: expected 'every <weekday> at <HH:MM> in <time zone>', got {raw!r}"
        )
    if words[1] not in WEEKDAYS:
        raise ConfigError(f"WEEKLY_SLOT: unknown weekday {words[1]!r}")
    try:
        hour_s, minute_s = words[3].split(":")
        hour, minute = int(hour_s), int(minute_s)
        if not (0 <= hour < 24 and 0 <= minute < 60):
            raise ValueError
    except ValueError:
        raise ConfigError(f"WEEKLY_SLOT: expected a time as HH:MM, got {words[3]!r}") from None
    try:
        zone = ZoneInfo(original[5])
    except (ZoneInfoNotFoundError, ValueError):
        raise ConfigError(f"WEEKLY_SLOT: unknown time zone {original[5]!r}") from None
    return WEEKDAYS.index(words[1]), hour, minute, zone


def _secret_key(env: Mapping[str, str], production: bool, instance_path: Path) -> str:
    key = env.get("SECRET_KEY", "")
    if production:
        if not key:
            raise ConfigError("SECRET_KEY: required when NEWSLETTER_ENV=production")
        if len(key.encode()) < 32:
            raise ConfigError("SECRET_KEY: must be at least 32 bytes in production")
        return key
    if key:
        return key
    # Dev: generate once and keep it, so links in captured mail survive restarts.
    path = instance_path / "secret_key"
    if path.exists():
        return path.read_text().strip()
    instance_path.mkdir(parents=True, exist_ok=True)
    key = secrets.token_urlsafe(48)
    try:
        with open(path, "x") as fh:
            fh.write(key)
        path.chmod(0o600)
    except FileExistsError:  # another process of `newsletter dev` won the race
        return path.read_text().strip()
    return key


def load_settings(env: Mapping[str, str], instance_path: Path) -> dict[str, Any]:
    """Build the Flask config from environment-like ``env``; raise ConfigError naming a bad one."""
    environment = env.get("NEWSLETTER_ENV", "development").strip().lower() or "development"
    if environment not in ("development", "production", "testing"):
        raise ConfigError(
            f"NEWSLETTER_ENV: expected development, production or testing, got {environment!r}"
        )
    production = environment == "production"
    secret_key = _secret_key(env, production, instance_path)

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

    base_url = _url(env, "BASE_URL", ("http", "https")) or "http://127.0.0.1:5000"
    if not urlsplit(base_url).netloc:
        raise ConfigError(f"BASE_URL: needs a host, got {base_url!r}")

    redis_url = _url(env, "REDIS_URL", ("redis", "rediss", "unix"))

    fallbacks = [k.strip() for k in env.get("SECRET_KEY_FALLBACKS", "").split(",") if k.strip()]
    slot_raw = env.get("WEEKLY_SLOT", "")
    dkim = {k: env.get(k, "").strip() for k in ("DKIM_DOMAIN", "DKIM_SELECTOR", "DKIM_PRIVATE_KEY")}
    if any(dkim.values()) and not all(dkim.values()):
        missing = next(k for k, v in dkim.items() if not v)
        raise ConfigError(f"{missing}: DKIM needs DKIM_DOMAIN, DKIM_SELECTOR and DKIM_PRIVATE_KEY")
    if dkim["DKIM_PRIVATE_KEY"]:
        dkim["DKIM_PRIVATE_KEY"] = _read_key(dkim["DKIM_PRIVATE_KEY"])

    return {
        "NEWSLETTER_ENV": environment,
        "SECRET_KEY": secret_key,
        "SECRET_KEY_FALLBACKS": fallbacks,
        "SQLALCHEMY_DATABASE_URI": _database_url(env, instance_path),
        "REDIS_URL": redis_url,
        "SMTP_HOST": smtp_host,
        "SMTP_PORT": _int(env, "SMTP_PORT", default_port, minimum=1),
        "SMTP_USERNAME": env.get("SMTP_USERNAME", "") or None,
        "SMTP_PASSWORD": env.get("SMTP_PASSWORD", "") or None,
        "SMTP_SECURITY": security,
        "SMTP_TIMEOUT": _float(env, "SMTP_TIMEOUT", 30.0),
        "MAIL_FROM": _mail_from(env),
        "BASE_URL": base_url.rstrip("/"),
        "NEWSLETTER_NAME": env.get("NEWSLETTER_NAME", "").strip() or "Tip of the Week",
        "POSTAL_ADDRESS": env.get("POSTAL_ADDRESS", "").strip(),
        "SEND_RATE": _float(env, "SEND_RATE", 0.0),
        "CONFIRM_MAX_AGE": _int(env, "CONFIRM_MAX_AGE", 7 * 24 * 3600, minimum=1),
        "EMAIL_CHECK_DNS": _bool(env, "EMAIL_CHECK_DNS", False),
        "WEEKLY_SLOT": parse_weekly_slot(slot_raw) if slot_raw.strip() else None,
        "WEEKLY_SLOT_RAW": slot_raw.strip(),
        "SLOT_GRACE": _int(env, "SLOT_GRACE", 6 * 3600),
        "BATCH_SIZE": _int(env, "BATCH_SIZE", 500, minimum=1),
        # Delivery engine: a claimed message's lease, how often the reconciler runs, retries.
        "SEND_LEASE_SECONDS": _float(env, "SEND_LEASE_SECONDS", 30.0),
        "RECONCILE_INTERVAL": _float(env, "RECONCILE_INTERVAL", 30.0),
        "SEND_MAX_ATTEMPTS": _int(env, "SEND_MAX_ATTEMPTS", 6, minimum=1),
        "SEND_RETRY_BASE": _float(env, "SEND_RETRY_BASE", 60.0),
        "SEND_PAUSE_AFTER": _int(env, "SEND_PAUSE_AFTER", 50, minimum=1),
        "BOUNCE_SOFT_LIMIT": _int(env, "BOUNCE_SOFT_LIMIT", 3, minimum=1),
        "SUBSCRIBE_RATE_LIMIT": _rate(env, "SUBSCRIBE_RATE_LIMIT", "60/600"),
        "EMBED_ORIGINS": _origins(env, "EMBED_ORIGINS"),
        "NEWSLETTER_LANGUAGE": _language(env),
        "WEBHOOK_RETRY_BASE": _float(env, "WEBHOOK_RETRY_BASE", 30.0),
        "WEBHOOK_ALLOW_HOSTS": _allow_hosts(env),
        "TRUSTED_PROXIES": _trusted_proxies(env),
        "BOUNCE_ADDRESS": _bounce_address(env),
        "BOUNCE_MAILBOX": parse_mailbox(env.get("BOUNCE_MAILBOX", "")),
        "BOUNCE_POLL_INTERVAL": _float(env, "BOUNCE_POLL_INTERVAL", 60.0),
        "DNS_NAMESERVER": parse_nameserver(env.get("DNS_NAMESERVER", "")),
        **_provider_hooks(env),
        "DKIM_DOMAIN": dkim["DKIM_DOMAIN"] or None,
        "DKIM_SELECTOR": dkim["DKIM_SELECTOR"] or None,
        "DKIM_PRIVATE_KEY": dkim["DKIM_PRIVATE_KEY"] or None,
        **_editor_sessions(env),
        "SESSION_COOKIE_HTTPONLY": True,
        "SESSION_COOKIE_SAMESITE": "Lax",
        "SESSION_COOKIE_SECURE": production or base_url.startswith("https://"),
        # The largest CSV file one import may upload: the import page admits this plus the
        # form around it (web/editor/imports.py). Every other request keeps the limits below:
        # a whole body, and each text field of a multipart form.
        "IMPORT_MAX_BYTES": _int(env, "IMPORT_MAX_BYTES", 20 * 1024 * 1024, minimum=1),
        "MAX_CONTENT_LENGTH": 10 * 1024 * 1024,
        "MAX_FORM_MEMORY_SIZE": 64 * 1024,
        "WTF_CSRF_TIME_LIMIT": None,
        "TESTING": environment == "testing",
    }


def _editor_sessions(env: Mapping[str, str]) -> dict[str, int]:
    """Read how long an editor's session may sit idle and how long it may last at most."""
    # The last activity is recorded once a minute, so a shorter idle limit could not be kept.
    idle = _int(env, "EDITOR_SESSION_IDLE", 12 * 3600, minimum=60)
    longest = _int(env, "EDITOR_SESSION_MAX", 7 * 24 * 3600, minimum=60)
    if longest < idle:
        raise ConfigError(
            f"EDITOR_SESSION_MAX: must be at least EDITOR_SESSION_IDLE ({idle}), got {longest}"
        )
    return {"EDITOR_SESSION_IDLE": idle, "EDITOR_SESSION_MAX": longest}


_HOST_NAME = re.compile(r"(?!-)[a-z0-9-]{1,63}(?<!-)(\.(?!-)[a-z0-9-]{1,63}(?<!-))*")


def _allow_hosts(env: Mapping[str, str]) -> frozenset[str]:
    """Read the hosts webhooks may be posted to although their addresses are internal."""
    hosts: set[str] = set()
    for item in env.get("WEBHOOK_ALLOW_HOSTS", "").split(","):
        host = item.strip().lower().rstrip(".")
        if not host:
            continue
        try:
            hosts.add(str(ipaddress.ip_address(host.strip("[]"))))
            continue
        except ValueError:
            pass
        if len(host) > 253 or not _HOST_NAME.fullmatch(host):
            raise ConfigError(
                "WEBHOOK_ALLOW_HOSTS: expected host names or IP addresses separated by commas "
                f"(like intranet.example.com,10.0.0.5), got {item.strip()!r}"
            )
        hosts.add(host)
    return frozenset(hosts)


def _trusted_proxies(env: Mapping[str, str]) -> int:
    """Read how many reverse proxies stand in front (their X-Forwarded-* headers are believed)."""
    raw = env.get("TRUSTED_PROXIES", "").strip()
    if raw == "":
        return 0
    if not raw.isdigit() or int(raw) > 10:
        raise ConfigError(
            "TRUSTED_PROXIES: expected the number of reverse proxies in front of the app "
            f"(0 for none, 1 for one nginx …, at most 10), got {raw!r}"
        )
    return int(raw)


# One line, no display name, no brackets: what goes after MAIL FROM: as it is.
_ATOM = r"[^\s@<>()\[\],;:\"\\.]+"
_PLAIN_ADDRESS = re.compile(rf"[^\s@<>()\[\],;:\"\\]+@{_ATOM}(\.{_ATOM})+")


def _provider_hooks(env: Mapping[str, str]) -> dict[str, Any]:
    """Read the settings of the mail providers' bounce webhooks (unset: that hook is off)."""
    user = env.get("POSTMARK_WEBHOOK_USER", "").strip()
    password = env.get("POSTMARK_WEBHOOK_PASSWORD", "").strip()
    if bool(user) != bool(password):
        raise ConfigError(
            "POSTMARK_WEBHOOK_USER: Postmark's webhook needs both POSTMARK_WEBHOOK_USER and "
            "POSTMARK_WEBHOOK_PASSWORD (the credentials you put in its URL)"
        )
    if ":" in user:
        raise ConfigError("POSTMARK_WEBHOOK_USER: HTTP Basic user names cannot hold a ':'")
    topics = frozenset(t.strip() for t in env.get("SNS_TOPIC_ARNS", "").split(",") if t.strip())
    for topic in topics:
        if not topic.startswith("arn:") or topic.count(":") < 5:
            raise ConfigError(
                "SNS_TOPIC_ARNS: expected topic ARNs like "
                f"arn:aws:sns:eu-west-1:123456789012:bounces, got {topic!r}"
            )
    hosts = frozenset(
        h.strip().lower() for h in env.get("SNS_CERT_HOSTS", "").split(",") if h.strip()
    )
    return {
        "SNS_TOPIC_ARNS": topics,
        "SNS_CERT_HOSTS": hosts,
        "MAILGUN_WEBHOOK_KEY": env.get("MAILGUN_WEBHOOK_KEY", "").strip() or None,
        "POSTMARK_WEBHOOK_USER": user or None,
        "POSTMARK_WEBHOOK_PASSWORD": password or None,
    }


def _bounce_address(env: Mapping[str, str]) -> str | None:
    """Read the envelope sender for issue copies (VERP adds +tag to its local part)."""
    raw = env.get("BOUNCE_ADDRESS", "").strip()
    if not raw:
        return None
    if not _PLAIN_ADDRESS.fullmatch(raw):
        raise ConfigError(
            f"BOUNCE_ADDRESS: expected a plain address like bounces@example.org, got {raw!r}"
        )
    return raw


MAILBOX_PORTS = {"imaps": 993, "imap": 143, "pop3s": 995, "pop3": 110}


@dataclass(frozen=True)
class Mailbox:
    """Where the worker fetches bounces: ``imaps://user:pass@host[:port]/FOLDER?ca=FILE``."""

    scheme: str  # imaps, imap (STARTTLS), pop3s, pop3 (STLS)
    host: str
    port: int
    username: str
    password: str = field(repr=False)
    folder: str = "INBOX"
    ca: str | None = None  # a PEM file of the CA to trust instead of the system's

    def __str__(self) -> str:
        return f"{self.scheme}://{self.username}@{self.host}:{self.port}/{self.folder}"


def parse_mailbox(raw: str, name: str = "BOUNCE_MAILBOX") -> Mailbox | None:
    """Parse a bounce mailbox URL; the error names the setting, never the password."""
    raw = raw.strip()
    if not raw:
        return None
    shape = f"expected {'|'.join(MAILBOX_PORTS)}://USER:PASSWORD@HOST[:PORT]/FOLDER[?ca=FILE]"
    try:
        parts = urlsplit(raw)
        port = parts.port or MAILBOX_PORTS.get(parts.scheme.lower(), 0)
    except ValueError:
        raise ConfigError(f"{name}: {shape} (the port is not a number)") from None
    scheme = parts.scheme.lower()
    if scheme not in MAILBOX_PORTS or not parts.hostname:
        raise ConfigError(f"{name}: {shape}")
    if not parts.username or parts.password is None:
        raise ConfigError(f"{name}: the URL needs a user name and a password ({shape})")
    folder = unquote(parts.path.lstrip("/")) or "INBOX"
    if not folder.isascii() or not folder.isprintable() or '"' in folder:
        raise ConfigError(f"{name}: the folder must be printable ASCII without quotes")
    if scheme.startswith("pop3") and folder.upper() != "INBOX":
        raise ConfigError(f"{name}: POP3 has one mailbox and no folders, got /{folder}")
    query = dict(parse_qsl(parts.query, keep_blank_values=True))
    ca = query.pop("ca", None)
    if query:
        raise ConfigError(f"{name}: unknown parameter {next(iter(query))!r}; only ca= is known")
    if ca is not None and not Path(ca).is_file():
        raise ConfigError(f"{name}: ca={ca!r} is not a readable file of CA certificates")
    return Mailbox(
        scheme, parts.hostname, port, unquote(parts.username), unquote(parts.password), folder, ca
    )


def parse_nameserver(raw: str, name: str = "DNS_NAMESERVER") -> tuple[str, int] | None:
    """Parse ``HOST[:PORT]`` (an IP address, IPv6 in brackets) of a DNS server to ask."""
    raw = raw.strip()
    if not raw:
        return None
    host, port = raw, "53"
    if raw.startswith("["):
        host, _, rest = raw[1:].partition("]")
        port = rest[1:] if rest.startswith(":") else ("" if rest else "53")
    elif raw.count(":") == 1:
        host, port = raw.split(":")
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        address = None
    if address is None or not port.isdigit() or not 0 < int(port) < 65536:
        raise ConfigError(
            f"{name}: expected a DNS server's IP address with an optional port, like 127.0.0.1:53 "
            f"or [::1]:5353, got {raw!r}"
        )
    return str(address), int(port)


def _read_key(value: str) -> str:
    """Accept the PEM itself or a path to a file holding it."""
    if "-----BEGIN" in value:
        return value.replace("\\n", "\n")
    path = Path(value)
    if not path.is_file():
        raise ConfigError("DKIM_PRIVATE_KEY: neither a PEM key nor a readable file")
    return path.read_text()


def environ() -> dict[str, str]:
    """Return a copy of the process environment."""
    return dict(os.environ)
