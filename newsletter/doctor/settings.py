"""Settings that work on a laptop but are unsafe, or unlawful, on a real server."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from newsletter.config import DEV_MAIL_PORT
from newsletter.doctor.names import is_local_host
from newsletter.doctor.report import Check, Status, worst

# What config.py falls back to when MAIL_FROM is not set.
DEFAULT_MAIL_FROM = "Tip of the Week <tips@example.org>"
MIN_SECRET_BYTES = 32


@dataclass(frozen=True)
class Finding:
    """One setting's problem (or, with ``note``, a fact worth knowing)."""

    setting: str
    status: Status | None  # None: a note, no problem
    text: str


def _generated_key(config: Mapping[str, Any]) -> bool:
    instance = config.get("INSTANCE_PATH")
    if not instance:
        return False
    path = Path(instance) / "secret_key"
    try:
        return path.is_file() and path.read_text().strip() == config["SECRET_KEY"]
    except OSError:
        return False


def _base_url(config: Mapping[str, Any], unsafe: Status) -> list[Finding]:
    url = str(config["BASE_URL"])
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


def _smtp(config: Mapping[str, Any], unsafe: Status) -> list[Finding]:
    host, port = str(config["SMTP_HOST"]), int(config["SMTP_PORT"])
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
    if config["SMTP_SECURITY"] == "none":
        if not local:
            secret = " and the SMTP password" if config.get("SMTP_PASSWORD") else ""
            found.append(
                Finding(
                    "SMTP_SECURITY",
                    Status.FAIL,
                    f"SMTP_SECURITY is none with the relay {host}: every copy{secret} crosses "
                    "the network unencrypted; set starttls (port 587) or tls (port 465)",
                )
            )
        elif config.get("SMTP_PASSWORD"):
            found.append(
                Finding(
                    "SMTP_SECURITY",
                    Status.WARN,
                    f"the SMTP password goes to {host} without TLS (on this machine only); "
                    "set SMTP_SECURITY=starttls if the relay offers it",
                )
            )
    return found


def _findings(config: Mapping[str, Any]) -> list[Finding]:
    production = config.get("NEWSLETTER_ENV") == "production"
    unsafe = Status.FAIL if production else Status.WARN
    found: list[Finding] = []
    if not production:
        found.append(
            Finding(
                "NEWSLETTER_ENV",
                Status.WARN,
                f"NEWSLETTER_ENV is {config.get('NEWSLETTER_ENV')}: set production on the "
                "server (it then insists on SECRET_KEY and SMTP_HOST)",
            )
        )
    key = str(config.get("SECRET_KEY") or "")
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
    elif _generated_key(config):
        found.append(
            Finding(
                "SECRET_KEY",
                unsafe,
                "SECRET_KEY is the one generated into the instance folder for development: "
                "set your own (python3 -c 'import secrets; print(secrets.token_urlsafe(48))')",
            )
        )
    found += _base_url(config, unsafe)
    found += _smtp(config, unsafe)
    if str(config["MAIL_FROM"]) == DEFAULT_MAIL_FROM:
        found.append(
            Finding(
                "MAIL_FROM",
                unsafe,
                f"MAIL_FROM is not set: mail would come from the example {DEFAULT_MAIL_FROM}; "
                "set your own address on a domain whose DNS you control",
            )
        )
    if not str(config.get("POSTAL_ADDRESS") or "").strip():
        found.append(
            Finding(
                "POSTAL_ADDRESS",
                unsafe,
                "POSTAL_ADDRESS is empty: CAN-SPAM and Gmail's and Yahoo's sender rules want "
                "a postal address in every issue",
            )
        )
    if not config.get("REDIS_URL"):
        found.append(
            Finding(
                "REDIS_URL",
                Status.WARN if production else None,
                "REDIS_URL is not set: the embedded Redis serves this machine only, so workers "
                "elsewhere cannot share the queue or SEND_RATE; set REDIS_URL for production",
            )
        )
    if str(config.get("SQLALCHEMY_DATABASE_URI", "")).startswith("sqlite"):
        found.append(
            Finding(
                "DATABASE_URL",
                None,
                "the database is SQLite: fine for the web app and several workers on this one "
                "machine; workers on several machines need PostgreSQL",
            )
        )
    return found


def check_settings(config: Mapping[str, Any]) -> Check:
    """Report the settings that would be unsafe on a production server."""
    found = _findings(config)
    problems = [f for f in found if f.status is not None]
    status = worst(f.status for f in problems if f.status is not None)
    names = ", ".join(dict.fromkeys(f.setting for f in problems))
    if not problems:
        summary = "nothing unsafe for production"
    elif config.get("NEWSLETTER_ENV") == "production":
        summary = f"unsafe in production: {names}"
    else:
        summary = f"to change before production: {names}"
    detail = tuple(f"{f.status or 'note'}: {f.text}" for f in found)
    return Check("settings", status, summary, detail)
