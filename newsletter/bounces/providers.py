"""Mail providers' bounce and complaint webhooks: authenticate each as it documents, then read.

Amazon SES posts through SNS, whose messages are signed with a certificate fetched from an
amazonaws.com host; Mailgun signs a timestamp and a one-time token with the account's webhook
key; Postmark sends HTTP Basic credentials that the operator put in the webhook URL. What a
payload says becomes ``Notice`` objects for ``intake.apply_notice``, which still matches each one by
our signed Message-ID or VERP tag: a genuine provider message about mail we never sent
changes nothing.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import hashlib
import hmac
import http.client
import json
import logging
import re
import ssl
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field, replace
from typing import Any
from urllib.parse import urlsplit

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from newsletter.bounces.intake import Notice
from newsletter.bounces.kinds import OUR_MESSAGE_ID, kind_for
from newsletter.config import Settings
from newsletter.models import BounceKind

log = logging.getLogger(__name__)

PROVIDERS = ("ses", "mailgun", "postmark")
MAILGUN_MAX_AGE = 5 * 60  # seconds; Mailgun's own advice for refusing an old signature
CERT_TIMEOUT = 5.0
CERT_MAX_BYTES = 64 * 1024  # an SNS signing certificate is under 2 kB
SNS_HOST = re.compile(r"sns\.[a-z0-9-]{1,40}\.amazonaws\.com(\.cn)?")
# The fields SNS signs, in this order, each as "Name\nvalue\n" (Subject only when present).
SNS_SIGNED = {
    "Notification": ("Message", "MessageId", "Subject", "Timestamp", "TopicArn", "Type"),
    "SubscriptionConfirmation": (
        "Message",
        "MessageId",
        "SubscribeURL",
        "Timestamp",
        "Token",
        "TopicArn",
        "Type",
    ),
}
SNS_SIGNED["UnsubscribeConfirmation"] = SNS_SIGNED["SubscriptionConfirmation"]
SNS_HASHES: dict[str, Callable[[], hashes.HashAlgorithm]] = {"1": hashes.SHA1, "2": hashes.SHA256}


class Unauthenticated(Exception):
    """The request is not provably from the provider: answer 401, change nothing."""


class Malformed(Exception):
    """The body is not what the provider sends: answer 400, change nothing."""


@dataclass(frozen=True)
class Webhook:
    """An authenticated provider message: what it says, and the key that spots a replay."""

    notices: list[Notice] = field(default_factory=list)
    replay_key: str = ""  # unique per message the provider sends; "" when it has none
    note: str = ""  # said instead of notices (a subscription to confirm)


def configured(provider: str, settings: Settings) -> bool:
    """Return whether the operator set up ``provider``'s webhook."""
    if provider == "ses":
        return bool(settings.sns_topic_arns)
    if provider == "mailgun":
        return bool(settings.mailgun_webhook_key)
    if provider == "postmark":
        return bool(settings.postmark_webhook_user)
    return False


def read(
    provider: str, payload: Any, authorization: str, settings: Settings, now: float
) -> Webhook:
    """Authenticate one configured provider's payload and return what it says."""
    if not isinstance(payload, dict):
        raise Malformed("expected a JSON object")
    raw = json.dumps(payload, indent=1, sort_keys=True)
    if provider == "ses":
        verify_sns(payload, settings)
        if payload.get("Type") != "Notification":
            url = payload.get("SubscribeURL", "")
            # Not visited from here: a web request should not make outbound calls on a
            # stranger's behalf, and confirming is a one-time step the operator takes.
            log.warning(
                "SNS %s for %s: open %s to confirm", payload["Type"], payload["TopicArn"], url
            )
            note = "subscription not confirmed automatically: open the SubscribeURL from the log"
            return Webhook(replay_key=f"sns:{payload['MessageId']}", note=note)
        return Webhook(ses_notices(payload, raw), f"sns:{payload['MessageId']}")
    if provider == "mailgun":
        verify_mailgun(payload, str(settings.mailgun_webhook_key), now)
        return Webhook(mailgun_notices(payload, raw), f"mailgun:{payload['signature']['token']}")
    if provider == "postmark":
        verify_postmark(
            authorization,
            str(settings.postmark_webhook_user),
            settings.postmark_webhook_password or "",
        )
        record_id = payload.get("ID")
        return Webhook(postmark_notices(payload, raw), f"postmark:{record_id}" if record_id else "")
    raise Malformed(f"unknown provider {provider!r}")


# --- Amazon SES through SNS -------------------------------------------------------------------


def verify_sns(message: Mapping[str, Any], settings: Settings) -> None:
    """Check an SNS message's signature against its certificate and its topic; raise if bad."""
    kind = message.get("Type")
    names = SNS_SIGNED.get(kind) if isinstance(kind, str) else None
    algorithm = SNS_HASHES.get(str(message.get("SignatureVersion")))
    if names is None or algorithm is None:
        raise Unauthenticated("not an SNS message of a known type and signature version")
    if str(message.get("TopicArn")) not in settings.sns_topic_arns:
        raise Unauthenticated("the SNS topic is not one of SNS_TOPIC_ARNS")
    try:
        signature = base64.b64decode(str(message["Signature"]), validate=True)
        signed = "".join(
            f"{name}\n{message[name]}\n" for name in names if name != "Subject" or name in message
        )
    except (KeyError, binascii.Error):
        raise Unauthenticated("the SNS message lacks a signed field or its signature") from None
    key = signing_key(str(message.get("SigningCertURL", "")), settings.sns_cert_hosts)
    try:
        key.verify(signature, signed.encode(), padding.PKCS1v15(), algorithm())
    except InvalidSignature:
        raise Unauthenticated("the SNS signature does not verify") from None


_CERTS: dict[str, rsa.RSAPublicKey] = {}


def signing_key(url: str, allowed_hosts: frozenset[str] | tuple[str, ...]) -> rsa.RSAPublicKey:
    """Return the public key of the SNS certificate at ``url``, fetched once per URL."""
    parts = urlsplit(url)
    try:
        host, port = (parts.hostname or "").lower(), parts.port
    except ValueError:
        raise Unauthenticated("SigningCertURL has a bad port") from None
    # The host check is the whole trust: anyone can sign with a certificate of their own,
    # only Amazon can serve one over verified TLS from an amazonaws.com name.
    trusted = host in allowed_hosts if allowed_hosts else bool(SNS_HOST.fullmatch(host))
    if parts.scheme != "https" or not trusted or (not allowed_hosts and port not in (None, 443)):
        raise Unauthenticated(f"SigningCertURL is not an SNS certificate URL: {url[:200]!r}")
    if url not in _CERTS:
        path = f"{parts.path}?{parts.query}" if parts.query else parts.path
        _CERTS[url] = _fetch_key(host, port or 443, path)
    return _CERTS[url]


def _fetch_key(host: str, port: int, path: str) -> rsa.RSAPublicKey:
    # http.client, not urllib: no redirects to follow elsewhere, no proxy from the environment.
    # The default context verifies the name and honours SSL_CERT_FILE.
    conn = http.client.HTTPSConnection(
        host, port, timeout=CERT_TIMEOUT, context=ssl.create_default_context()
    )
    try:
        conn.request("GET", path or "/")
        answer = conn.getresponse()
        body = answer.read(CERT_MAX_BYTES + 1)
        if answer.status != 200 or len(body) > CERT_MAX_BYTES:
            raise Unauthenticated(f"SigningCertURL answered {answer.status}")
        cert = x509.load_pem_x509_certificate(body)
    except (OSError, http.client.HTTPException, ValueError) as exc:
        log.warning("SNS signing certificate from %s not fetched: %s", host, exc)
        raise Unauthenticated("the SNS signing certificate could not be fetched") from None
    finally:
        conn.close()
    key = cert.public_key()
    now = dt.datetime.now(dt.UTC)
    if not isinstance(key, rsa.RSAPublicKey) or not (
        cert.not_valid_before_utc <= now <= cert.not_valid_after_utc
    ):
        raise Unauthenticated("the SNS signing certificate is not a valid RSA certificate")
    return key


def ses_notices(message: Mapping[str, Any], raw: str) -> list[Notice]:
    """Return the notices of an SES notification carried in an SNS message."""
    try:
        event = json.loads(str(message["Message"]))
    except ValueError:
        raise Malformed("the SNS Message is not an SES notification") from None
    if not isinstance(event, dict):
        raise Malformed("the SNS Message is not an SES notification")
    kind = event.get("notificationType") or event.get("eventType")
    mail = _dict(event.get("mail"))
    common = {"source": "ses", "message_id": _ses_message_id(mail), "raw": raw}
    envelope_to = str(mail.get("returnPath") or mail.get("source") or "")
    if kind == "Bounce":
        bounce = _dict(event.get("bounce"))
        permanent = bounce.get("bounceType") == "Permanent"
        subtype = str(bounce.get("bounceSubType") or "")
        notices = []
        for person in _dicts(bounce.get("bouncedRecipients")):
            status = str(person.get("status") or "")
            diagnostic = str(person.get("diagnosticCode") or "")
            notices.append(
                Notice(
                    kind=_permanent_kind(status, diagnostic, subtype == "NoEmail")
                    if permanent
                    else BounceKind.SOFT,
                    diagnostic=diagnostic or str(bounce.get("bounceSubType") or ""),
                    status_code=status,
                    recipient=str(person.get("emailAddress") or ""),
                    envelope_to=envelope_to,
                    **common,
                )
            )
        return notices
    if kind == "Complaint":
        complaint = _dict(event.get("complaint"))
        return [
            Notice(
                kind=BounceKind.COMPLAINT,
                diagnostic=str(complaint.get("complaintFeedbackType") or "complaint"),
                recipient=str(person.get("emailAddress") or ""),
                envelope_to=envelope_to,
                **common,
            )
            for person in _dicts(complaint.get("complainedRecipients"))
        ]
    return [Notice(kind=None, source="ses", status_code=str(kind or "")[:12], raw=raw)]


def ses_mail_notices(body: str) -> list[Notice]:
    """Read an SES notification that came by mail (an SNS e-mail subscription): its JSON body.

    Mailed, it is believed no more than any other report: only for a copy named by a signed
    VERP tag or Message-ID. A body that is not such JSON gives no notice.
    """
    text = body.strip()
    if not text.startswith("{") or len(text) > 256 * 1024:
        return []
    try:
        document = json.loads(text)
    except ValueError:
        return []
    if not isinstance(document, dict):
        return []
    message = document if "Message" in document else {"Message": json.dumps(document)}
    try:
        notices = ses_notices(message, text)
    except Malformed:
        return []
    # The mail's own envelope is the subscription's address; the copy's is SES's returnPath.
    return [
        replace(n, envelope_to="", original_mail_from=n.envelope_to)
        for n in notices
        if n.kind is not None or n.status_code
    ]


def _ses_message_id(mail: Mapping[str, Any]) -> str:
    # mail.messageId is SES's own; ours is among the original headers, when SES kept them.
    for header in _dicts(mail.get("headers")):
        if str(header.get("name", "")).lower() == "message-id":
            return str(header.get("value") or "")
    return str(_dict(mail.get("commonHeaders")).get("messageId") or "")


# --- Mailgun ----------------------------------------------------------------------------------


def verify_mailgun(payload: Mapping[str, Any], key: str, now: float) -> None:
    """Check Mailgun's HMAC of timestamp and token, and that it is fresh; raise if not."""
    signed = _dict(payload.get("signature"))
    timestamp, token, signature = (
        str(signed.get(k, "")) for k in ("timestamp", "token", "signature")
    )
    expected = hmac.new(key.encode(), (timestamp + token).encode(), hashlib.sha256).hexdigest()
    # Bytes: compare_digest raises on a non-ASCII str, and a stranger chooses this one.
    if not token or not hmac.compare_digest(expected.encode(), signature.encode()):
        raise Unauthenticated("the Mailgun signature does not verify")
    if (
        not (timestamp.isascii() and timestamp.isdigit())
        or abs(now - int(timestamp)) > MAILGUN_MAX_AGE
    ):
        raise Unauthenticated("the Mailgun signature is older than five minutes")


def mailgun_notices(payload: Mapping[str, Any], raw: str) -> list[Notice]:
    """Return the notice of one Mailgun event."""
    event = _dict(payload.get("event-data"))
    message_id = str(_dict(_dict(event.get("message")).get("headers")).get("message-id") or "")
    status = _dict(event.get("delivery-status"))
    code = str(status.get("enhanced-code") or "")
    diagnostic = str(
        status.get("message") or status.get("description") or event.get("reason") or ""
    )
    kind: BounceKind | None = None
    if event.get("event") == "complained":
        kind = BounceKind.COMPLAINT
    elif event.get("event") == "failed" and event.get("severity") == "permanent":
        # "old": Mailgun retried a temporary failure until it gave up, which is a soft bounce.
        reason = event.get("reason")
        kind = BounceKind.SOFT if reason == "old" else _permanent_kind(code, diagnostic)
    # A temporary failure is left alone: Mailgun retries it, and either delivers it or
    # sends a final "permanent" event with reason "old" once it gives up.
    return [
        Notice(
            kind=kind,
            source="mailgun",
            diagnostic=diagnostic,
            status_code=code or str(status.get("code") or "")[:12],
            recipient=str(event.get("recipient") or ""),
            message_id=f"<{message_id.strip('<>')}>" if message_id else "",
            envelope_to=str(_dict(event.get("envelope")).get("sender") or ""),
            raw=raw,
        )
    ]


# --- Postmark ---------------------------------------------------------------------------------

POSTMARK_KINDS = {
    "HardBounce": BounceKind.HARD,
    "BadEmailAddress": BounceKind.HARD,
    "SoftBounce": BounceKind.SOFT,
    "Transient": BounceKind.SOFT,
    "DnsError": BounceKind.SOFT,
    "SpamComplaint": BounceKind.COMPLAINT,
    "Blocked": BounceKind.BLOCKED,
}


def verify_postmark(authorization: str, user: str, password: str) -> None:
    """Check the HTTP Basic credentials Postmark sends from the webhook URL; raise if wrong."""
    scheme, _, encoded = authorization.partition(" ")
    try:
        given = base64.b64decode(encoded.strip(), validate=True)
    except binascii.Error:
        given = b""
    given_user, _, given_password = given.partition(b":")
    # Both compared, always: which of the two was wrong must not show in the time taken.
    ok = hmac.compare_digest(given_user, user.encode()) & hmac.compare_digest(
        given_password, password.encode()
    )
    if scheme.lower() != "basic" or not ok:
        raise Unauthenticated("wrong Postmark webhook credentials")


def postmark_notices(payload: Mapping[str, Any], raw: str) -> list[Notice]:
    """Return the notice of one Postmark bounce or spam complaint."""
    kind_name = str(payload.get("Type") or payload.get("RecordType") or "")
    return [
        Notice(
            kind=POSTMARK_KINDS.get(kind_name),
            source="postmark",
            diagnostic=str(payload.get("Details") or payload.get("Description") or kind_name),
            status_code=kind_name[:12] if kind_name not in POSTMARK_KINDS else "",
            recipient=str(payload.get("Email") or ""),
            message_id=_postmark_message_id(payload),
            raw=raw,
        )
    ]


def _postmark_message_id(payload: Mapping[str, Any]) -> str:
    # "MessageID" is Postmark's own; ours comes back only as metadata we sent along, in the
    # original headers, or quoted in the bounce's full content.
    metadata = _dict(payload.get("Metadata"))
    if metadata.get("message_id"):
        return str(metadata["message_id"])
    for header in _dicts(payload.get("Headers")):
        if str(header.get("Name", "")).lower() == "message-id":
            return str(header.get("Value") or "")
    found = OUR_MESSAGE_ID.search(str(payload.get("Content") or "").encode("utf-8", "replace"))
    return found.group(0).decode() if found else ""


# --- shared -----------------------------------------------------------------------------------


def _permanent_kind(status: str, diagnostic: str, no_such_user: bool = False) -> BounceKind | None:
    # Read like any report: hard only for a clear "no such user", in words, in its code, or
    # in the provider's own verdict (SES's "NoEmail"); a failure that says nothing is nothing.
    kind = kind_for(status if _CODE.fullmatch(status) else "", diagnostic)
    return BounceKind.HARD if kind is None and no_such_user else kind


_CODE = re.compile(r"[245]\.[0-9]{1,3}\.[0-9]{1,3}")


def _dict(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, dict) else {}


def _dicts(value: Any) -> Iterator[Mapping[str, Any]]:
    return (item for item in (value if isinstance(value, list) else []) if isinstance(item, dict))
