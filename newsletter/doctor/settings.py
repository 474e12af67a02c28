"""Settings that work on a laptop but are unsafe, or unlawful, on a real server."""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import urlsplit

from newsletter.config import DEV_MAIL_PORT, Settings
from newsletter.doctor.names import is_local_host
from newsletter.doctor.report import Check, Status, worst

# What load_settings falls back to when MAIL_FROM is not set.
DEFAULT_MAIL_FROM = "Tip of the Week <tips@example.org>"
MIN_SECRET_BYTES = 32


@dataclass(frozen=True)
class Finding:
    """One setting's problem (or, with ``note``, a fact worth knowing)."""

    setting: str
    status: Status | None  # None: a note, no problem
    text: str


def _generated_key(settings: Settings) -> bool:
    path = settings.instance_path / "secret_key"
    try:
        return path.is_file() and path.read_text().strip() == settings.secret_key
    except OSError:
        return False


def _base_url(settings: Settings, unsafe: Status) -> list[Finding]:
    url = settings.base_url
    parts = urlsplit(url)
    found = []
    if parts.hostname and is_local_host(parts.hostname):
        found.append(
            Finding(
                "BASE_URL",
                unsafe,
                f"BASE_URL is {url}: every link in every email would lead to the reader's own "
                "computer; set the public https address",
            )
        )
    elif parts.scheme != "https":
        found.append(
            Finding(
                "BASE_URL",
                unsafe,
                f"BASE_URL is {url}: links in mail and the editor's login cookie travel "
                "unencrypted; serve the site over https and set BASE_URL to it",
            )
        )
    return found


def _smtp(settings: Settings, unsafe: Status) -> list[Finding]:
    host, port = settings.smtp_host, settings.smtp_port
    local = is_local_host(host)
    found = []
    if local and port == DEV_MAIL_PORT:
        found.append(
            Finding(
                "SMTP_HOST",
                unsafe,
                f"SMTP_HOST is {host}:{port}, the dev mail catcher: no reader gets any mail; "
                "set SMTP_HOST and SMTP_PORT to your relay",
            )
        )
    if settings.smtp_security == "none":
        if not local:
            secret = " and the SMTP password" if settings.smtp_password else ""
            found.append(
                Finding(
                    "SMTP_SECURITY",
                    Status.FAIL,
                    f"SMTP_SECURITY is none with the relay {host}: every copy{secret} crosses "
                    "the network unencrypted; set starttls (port 587) or tls (port 465)",
                )
            )
        elif settings.smtp_password:
            found.append(
                Finding(
                    "SMTP_SECURITY",
                    Status.WARN,
                    f"the SMTP password goes to {host} without TLS (on this machine only); "
                    "set SMTP_SECURITY=starttls if the relay offers it",
                )
            )
    return found


def _findings(settings: Settings) -> list[Finding]:
    production = settings.production
    unsafe = Status.FAIL if production else Status.WARN
    found: list[Finding] = []
    if not production:
        found.append(
            Finding(
                "NEWSLETTER_ENV",
                Status.WARN,
                f"NEWSLETTER_ENV is {settings.environment}: set production on the "
                "server (it then insists on SECRET_KEY and SMTP_HOST)",
            )
        )
    key = settings.secret_key
    if len(key.encode()) < MIN_SECRET_BYTES:
        found.append(
            Finding(
                "SECRET_KEY",
                Status.FAIL,
                f"SECRET_KEY is {len(key.encode())} bytes: anyone who guesses it can forge "
                f"unsubscribe links and editor sessions; use at least {MIN_SECRET_BYTES} random "
                "bytes",
            )
        )
    elif _generated_key(settings):
        found.append(
            Finding(
                "SECRET_KEY",
                unsafe,
                "SECRET_KEY is the one generated into the instance folder for development: "
                "set your own (python3 -c 'import secrets; print(secrets.token_urlsafe(48))')",
            )
        )
    found += _base_url(settings, unsafe)
    found += _smtp(settings, unsafe)
    if settings.mail_from == DEFAULT_MAIL_FROM:
        found.append(
            Finding(
                "MAIL_FROM",
                unsafe,
                f"MAIL_FROM is not set: mail would come from the example {DEFAULT_MAIL_FROM}; "
                "set your own address on a domain whose DNS you control",
            )
        )
    if not settings.postal_address.strip():
        found.append(
            Finding(
                "POSTAL_ADDRESS",
                unsafe,
                "no postal address (POSTAL_ADDRESS, or the one at /editor/settings): CAN-SPAM "
                "and Gmail's and Yahoo's sender rules want a postal address in every issue",
            )
        )
    if not settings.redis_url:
        found.append(
            Finding(
                "REDIS_URL",
                Status.WARN if production else None,
                "REDIS_URL is not set: the embedded Redis serves this machine only, so workers "
                "elsewhere cannot share the queue or SEND_RATE; set REDIS_URL for production",
            )
        )
    if settings.database_url.startswith("sqlite"):
        found.append(
            Finding(
                "DATABASE_URL",
                None,
                "the database is SQLite: fine for the web app and several workers on this one "
                "machine; workers on several machines need PostgreSQL",
            )
        )
    return found


def check_settings(settings: Settings) -> Check:
    """Report the settings that would be unsafe on a production server."""
    found = _findings(settings)
    problems = [f for f in found if f.status is not None]
    status = worst(f.status for f in problems if f.status is not None)
    names = ", ".join(dict.fromkeys(f.setting for f in problems))
    if not problems:
        summary = "nothing unsafe for production"
    elif settings.production:
        summary = f"unsafe in production: {names}"
    else:
        summary = f"to change before production: {names}"
    detail = tuple(f"{f.status or 'note'}: {f.text}" for f in found)
    return Check("settings", status, summary, detail)
