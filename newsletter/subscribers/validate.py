"""Check what a person typed: email addresses and display names. One clear message per field.

Messages are English and marked with ``N_`` for the catalogue: the page that shows one
translates it (``error_text``), so this module never needs to know the reader's language.
"""

from __future__ import annotations

from email_validator import EmailNotValidError, EmailUndeliverableError, validate_email

from newsletter.errors import Invalid
from newsletter.i18n import N_
from newsletter.models import MAX_EMAIL_LENGTH

MAX_NAME = 100
# Providers that deliver "j.o.e@" to "joe@", and the domain each is another name of.
DOTS_IGNORED = {"gmail.com": "gmail.com", "googlemail.com": "gmail.com"}


def normalize_email(raw: object, *, check_dns: bool = False) -> str:
    """Return the canonical, lower-cased form of an address or raise Invalid."""
    if not isinstance(raw, str) or not raw.strip():
        raise Invalid("email", N_("Please enter your email address."))
    value = raw.strip()
    if len(value) > MAX_EMAIL_LENGTH:
        raise Invalid("email", N_("That email address is too long."))
    # U+FFFD and "%XX" are what undecodable bytes become in a form (werkzeug keeps the escape
    # as typed); "%" in a local part is legal but only ever seen in source routing and abuse.
    if any(c in value for c in '\r\n\0<>"(),;: \t\ufffd%') or "=?" in value:
        raise Invalid("email", N_("Please enter just the address, like name@example.org."))
    try:
        result = validate_email(
            value,
            check_deliverability=check_dns,
            allow_display_name=False,
            allow_quoted_local=False,
            allow_domain_literal=False,
            allow_smtputf8=True,
        )
    except EmailNotValidError as exc:
        raise _not_valid(value, exc) from None
    normalized = result.normalized.lower()
    if len(normalized) > MAX_EMAIL_LENGTH:
        raise Invalid("email", N_("That email address is too long."))
    return normalized


def _not_valid(value: str, exc: EmailNotValidError) -> Invalid:
    """Say what is wrong with an address in our own words (email-validator's are English only)."""
    local, at, domain = value.rpartition("@")
    if isinstance(exc, EmailUndeliverableError):
        return Invalid(
            "email", N_("The domain %(domain)s does not accept email."), domain=domain.lower()
        )
    if not at:
        return Invalid("email", N_("An email address needs an @, like name@example.org."))
    if "@" in local:
        return Invalid("email", N_("An email address has only one @, like name@example.org."))
    reason = str(exc).lower()
    if "too long" in reason:
        return Invalid("email", N_("That email address is too long."))
    if not local or "before the @-sign" in reason:
        return Invalid("email", N_("The part before the @ is not valid in an email address."))
    if not domain or "after the @-sign" in reason:
        return Invalid("email", N_("The part after the @ is not a valid domain name."))
    return Invalid("email", N_("That email address is not valid. Please check it for typos."))


def clean_name(raw: object) -> str:
    """Return a display name fit to store, or raise Invalid."""
    if raw is None:
        return ""
    if not isinstance(raw, str):
        raise Invalid("name", N_("Please enter your name as plain text."))
    value = " ".join(raw.split(" ")).strip()
    if any(not c.isprintable() or c == "\ufffd" for c in value) or "=?" in value:
        raise Invalid("name", N_("Your name may not contain line breaks or control characters."))
    if len(value) > MAX_NAME:
        raise Invalid(
            "name", N_("Please keep your name under %(limit)s characters."), limit=MAX_NAME
        )
    return value


def mailbox_domain(email: str) -> str:
    """Return the domain of a normalised address, googlemail.com counted as gmail.com."""
    domain = email.rpartition("@")[2]
    return DOTS_IGNORED.get(domain, domain)


def mailbox_key(email: str) -> str:
    """Return the mailbox a normalised address delivers to: ``+tags`` off, Gmail's dots off.

    Every alias of one inbox (``ann+1@``, ``a.n.n@gmail.com``) has the same key, so limits
    on confirmation mails hold per person rather than per spelling.
    """
    local, _, domain = email.rpartition("@")
    base = local.split("+", 1)[0] or local  # "+only@" has no tag to strip
    if domain in DOTS_IGNORED:
        base = base.replace(".", "") or base
    return f"{base}@{mailbox_domain(email)}"
