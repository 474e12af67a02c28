"""How each setting is read from the environment: one parser per kind of value, each error
naming the setting. ``newsletter.config`` puts them together into the Settings."""

from __future__ import annotations

import ipaddress
import re
import secrets
from collections.abc import Mapping
from dataclasses import dataclass, field
from email.headerregistry import Address
from email.utils import parseaddr
from pathlib import Path
from typing import NamedTuple
from urllib.parse import parse_qsl, unquote, urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from newsletter.i18n import DEFAULT_LANGUAGE, LANGUAGES

SMTP_SECURITY_CHOICES = ("none", "starttls", "tls")
WEEKDAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
DEV_MAIL_PORT = 8025


class ConfigError(Exception):
    """A setting is missing or malformed; the message names it."""


def read_int(env: Mapping[str, str], name: str, default: int, minimum: int = 0) -> int:
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


def read_float(env: Mapping[str, str], name: str, default: float) -> float:
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


def read_bool(env: Mapping[str, str], name: str, default: bool) -> bool:
    raw = env.get(name, "").strip().lower()
    if raw == "":
        return default
    if raw in ("1", "true", "yes", "on"):
        return True
    if raw in ("0", "false", "no", "off"):
        return False
    raise ConfigError(f"{name}: expected on/off (true/false, 1/0), got {raw!r}")


def read_rate(env: Mapping[str, str], name: str, default: str) -> tuple[int, int]:
    """Read COUNT/SECONDS (e.g. 60/600) into (60, 600)."""
    raw = env.get(name, "").strip() or default
    try:
        hits, seconds = (int(x) for x in raw.split("/", 1))
    except ValueError:
        raise ConfigError(f"{name}: expected COUNT/SECONDS like 60/600, got {raw!r}") from None
    if hits < 1 or seconds < 1:
        raise ConfigError(f"{name}: both numbers must be at least 1, got {raw!r}")
    return hits, seconds


def read_language(env: Mapping[str, str]) -> str:
    raw = env.get("NEWSLETTER_LANGUAGE", "").strip() or DEFAULT_LANGUAGE
    code = raw.replace("-", "_")
    if code not in LANGUAGES:
        raise ConfigError(
            f"NEWSLETTER_LANGUAGE: expected one of {', '.join(LANGUAGES)}, got {raw!r}"
        )
    return code


def read_origins(env: Mapping[str, str], name: str) -> tuple[str, ...]:
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


def read_url(env: Mapping[str, str], name: str, schemes: tuple[str, ...]) -> str | None:
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


def read_database_url(env: Mapping[str, str], instance_path: Path) -> str:
    url = read_url(env, "DATABASE_URL", ("sqlite", "postgresql", "postgres"))
    if url is None:
        return f"sqlite:///{instance_path / 'newsletter.sqlite3'}"
    if url.startswith("postgres://"):  # Heroku-style alias
        url = "postgresql://" + url[len("postgres://") :]
    if url.startswith("postgresql://"):
        url = "postgresql+psycopg://" + url[len("postgresql://") :]
    return url


def read_mail_from(env: Mapping[str, str]) -> str:
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


class WeeklySlot(NamedTuple):
    """When the weekly issue goes out: a weekday (0 is Monday), a time, and its time zone."""

    weekday: int
    hour: int
    minute: int
    zone: ZoneInfo


def parse_weekly_slot(raw: str) -> WeeklySlot | None:
    """Parse 'every monday at 09:00 in Europe/Berlin' into a WeeklySlot (None when empty)."""
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
    return WeeklySlot(WEEKDAYS.index(words[1]), hour, minute, zone)


def read_secret_key(env: Mapping[str, str], production: bool, instance_path: Path) -> str:
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


def read_editor_sessions(env: Mapping[str, str]) -> tuple[int, int]:
    """Read how long an editor's session may sit idle and how long it may last at most."""
    # The last activity is recorded once a minute, so a shorter idle limit could not be kept.
    idle = read_int(env, "EDITOR_SESSION_IDLE", 12 * 3600, minimum=60)
    longest = read_int(env, "EDITOR_SESSION_MAX", 7 * 24 * 3600, minimum=60)
    if longest < idle:
        raise ConfigError(
            f"EDITOR_SESSION_MAX: must be at least EDITOR_SESSION_IDLE ({idle}), got {longest}"
        )
    return idle, longest


_HOST_NAME = re.compile(r"(?!-)[a-z0-9-]{1,63}(?<!-)(\.(?!-)[a-z0-9-]{1,63}(?<!-))*")


def read_allow_hosts(env: Mapping[str, str], name: str = "WEBHOOK_ALLOW_HOSTS") -> frozenset[str]:
    """Read hosts that may be reached although their addresses are internal (webhooks, feeds)."""
    hosts: set[str] = set()
    for item in env.get(name, "").split(","):
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
                f"{name}: expected host names or IP addresses separated by commas "
                f"(like intranet.example.com,10.0.0.5), got {item.strip()!r}"
            )
        hosts.add(host)
    return frozenset(hosts)


FEED_MODES = ("draft", "ready")


@dataclass(frozen=True)
class Feed:
    """FEED_URL and how it is polled (``newsletter.archive.poll``)."""

    url: str
    mode: str  # draft or ready: what a new item becomes
    interval: float  # seconds between two polls


def read_feed(env: Mapping[str, str], weekly_slot: bool) -> Feed | None:
    """Read FEED_URL, FEED_MODE and FEED_POLL_INTERVAL; None when no feed is set."""
    url = read_url(env, "FEED_URL", ("http", "https"))
    mode = env.get("FEED_MODE", "").strip().lower() or "draft"
    if mode not in FEED_MODES:
        raise ConfigError(f"FEED_MODE: expected draft or ready, got {mode!r}")
    interval = read_float(env, "FEED_POLL_INTERVAL", 900.0)
    if interval < 1:
        raise ConfigError(f"FEED_POLL_INTERVAL: must be at least 1 second, got {interval:g}")
    if url is None:
        return None
    if not urlsplit(url).hostname:
        raise ConfigError(f"FEED_URL: needs a host, got {url!r}")
    if mode == "ready" and not weekly_slot:
        raise ConfigError(
            "FEED_MODE: ready means 'for the weekly slot', and WEEKLY_SLOT is not set; set it "
            "(e.g. monday 09:00 Europe/Berlin) or use FEED_MODE=draft"
        )
    return Feed(url, mode, interval)


def read_trusted_proxies(env: Mapping[str, str]) -> int:
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


class ProviderHooks(NamedTuple):
    """The mail providers' bounce webhooks: who may post them (unset: that hook is off)."""

    sns_topic_arns: frozenset[str]
    sns_cert_hosts: frozenset[str]
    mailgun_webhook_key: str | None
    postmark_webhook_user: str | None
    postmark_webhook_password: str | None


def read_provider_hooks(env: Mapping[str, str]) -> ProviderHooks:
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
    return ProviderHooks(
        sns_topic_arns=topics,
        sns_cert_hosts=hosts,
        mailgun_webhook_key=env.get("MAILGUN_WEBHOOK_KEY", "").strip() or None,
        postmark_webhook_user=user or None,
        postmark_webhook_password=password or None,
    )


def read_bounce_address(env: Mapping[str, str]) -> str | None:
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


def read_key(value: str) -> str:
    """Accept the PEM itself or a path to a file holding it."""
    if "-----BEGIN" in value:
        return value.replace("\\n", "\n")
    path = Path(value)
    if not path.is_file():
        raise ConfigError("DKIM_PRIVATE_KEY: neither a PEM key nor a readable file")
    return path.read_text()


class Dkim(NamedTuple):
    """DKIM signing: all three set, or none (signing off)."""

    domain: str | None
    selector: str | None
    private_key: str | None


def read_dkim(env: Mapping[str, str]) -> Dkim:
    """Read DKIM_DOMAIN, DKIM_SELECTOR and DKIM_PRIVATE_KEY (the PEM or a file holding it)."""
    dkim = {k: env.get(k, "").strip() for k in ("DKIM_DOMAIN", "DKIM_SELECTOR", "DKIM_PRIVATE_KEY")}
    if any(dkim.values()) and not all(dkim.values()):
        missing = next(k for k, v in dkim.items() if not v)
        raise ConfigError(f"{missing}: DKIM needs DKIM_DOMAIN, DKIM_SELECTOR and DKIM_PRIVATE_KEY")
    if dkim["DKIM_PRIVATE_KEY"]:
        dkim["DKIM_PRIVATE_KEY"] = read_key(dkim["DKIM_PRIVATE_KEY"])
    return Dkim(
        dkim["DKIM_DOMAIN"] or None, dkim["DKIM_SELECTOR"] or None, dkim["DKIM_PRIVATE_KEY"] or None
    )
