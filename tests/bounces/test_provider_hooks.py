"""Provider webhooks under /hooks/bounces/<provider>: SES through SNS, Mailgun, Postmark.

A real issue goes through the worker to an SMTP sink; each test posts what the provider
would send about one of those copies, with its real Message-ID or VERP envelope sender,
signed or authenticated as that provider documents. SNS certificates are real: an RSA key
and a self-signed certificate made here, served over verified TLS from 127.0.0.1.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import hmac
import json
import threading
import time
import uuid
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.x509.oid import NameOID

from newsletter.bounces.providers import Unauthenticated, signing_key
from newsletter.models import BounceKind
from tests.bounces.conftest import BOUNCE_ADDRESS, FOREIGN_ID, Copy, bounce_rows, status_of
from tests.helpers.receivers import QuietHTTPServer
from tests.helpers.tls import make_certificates

TOPIC = "arn:aws:sns:eu-west-1:123456789012:newsletter-bounces"
MAILGUN_KEY = "key-mailgun-webhook-signing-key"
POSTMARK = ("postmark-hook", "a long random webhook password")


# --- an SNS signing certificate served over https from 127.0.0.1 -----------------------------


class CertServer:
    """Serves PEM certificates by path over TLS with a certificate the test CA signed."""

    def __init__(self, folder: Path) -> None:
        self.tls = make_certificates(folder)
        self.files: dict[str, bytes] = {}
        self.fetches = 0
        files, server = self.files, self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 - the stdlib's name
                server.fetches += 1
                body = files.get(self.path)
                self.send_response(200 if body else 404)
                self.end_headers()
                self.wfile.write(body or b"")

            def log_message(self, *args: Any) -> None:
                pass

        self.httpd = QuietHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.socket = self.tls.server_context().wrap_socket(
            self.httpd.socket, server_side=True
        )
        self.port = self.httpd.server_address[1]
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def publish(self, path: str, cert: x509.Certificate) -> str:
        self.files[path] = cert.public_bytes(serialization.Encoding.PEM)
        return f"https://127.0.0.1:{self.port}{path}"

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


def self_signed(key: rsa.RSAPrivateKey) -> x509.Certificate:
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "sns.amazonaws.com")])
    now = dt.datetime.now(dt.UTC)
    return (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .sign(key, hashes.SHA256())
    )


class Signer:
    """An SNS topic's signing key and the URL its certificate is served from."""

    def __init__(self, key: rsa.RSAPrivateKey, cert_url: str) -> None:
        self.key, self.cert_url = key, cert_url

    def message(
        self, event: dict[str, Any] | None, *, version: str = "1", **fields: str
    ) -> dict[str, Any]:
        """Return an SNS message carrying ``event``, signed as the SNS documentation says."""
        message = {
            "Type": "Notification",
            "MessageId": str(uuid.uuid4()),
            "TopicArn": TOPIC,
            "Subject": "Amazon SES Email Event Notification",
            "Message": json.dumps(event),
            "Timestamp": dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
            "SignatureVersion": version,
            "SigningCertURL": self.cert_url,
            "UnsubscribeURL": "https://sns.eu-west-1.amazonaws.com/?Action=Unsubscribe",
            **fields,
        }
        if message["Type"] == "Notification":
            names = ["Message", "MessageId", "Subject", "Timestamp", "TopicArn", "Type"]
        else:
            names = ["Message", "MessageId", "SubscribeURL", "Timestamp", "Token", "TopicArn"]
            names.append("Type")
        canonical = "".join(f"{n}\n{message[n]}\n" for n in names if n in message)
        digest = hashes.SHA1() if version == "1" else hashes.SHA256()
        signature = self.key.sign(canonical.encode(), padding.PKCS1v15(), digest)
        message["Signature"] = base64.b64encode(signature).decode()
        return message


@pytest.fixture(scope="module")
def cert_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[CertServer]:
    server = CertServer(tmp_path_factory.mktemp("sns-tls"))
    yield server
    server.stop()


@pytest.fixture(scope="module")
def signer(cert_server: CertServer) -> Signer:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return Signer(key, cert_server.publish("/SimpleNotificationService-test.pem", self_signed(key)))


@pytest.fixture(autouse=True)
def trust_test_ca(cert_server: CertServer, monkeypatch: pytest.MonkeyPatch) -> None:
    """Trust the test CA for the certificate fetch, as an operator trusts a private one."""
    monkeypatch.setenv("SSL_CERT_FILE", str(cert_server.tls.ca))


@pytest.fixture
def settings() -> dict[str, str]:
    return {
        "BOUNCE_ADDRESS": BOUNCE_ADDRESS,
        "SEND_RETRY_BASE": "0.05",
        "SMTP_TIMEOUT": "2",
        "SNS_TOPIC_ARNS": TOPIC,
        "SNS_CERT_HOSTS": "127.0.0.1",
        "MAILGUN_WEBHOOK_KEY": MAILGUN_KEY,
        "POSTMARK_WEBHOOK_USER": POSTMARK[0],
        "POSTMARK_WEBHOOK_PASSWORD": POSTMARK[1],
    }


def post(app: Any, provider: str, body: Any, **headers: str) -> Any:
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    return app.test_client().post(
        f"/hooks/bounces/{provider}",
        data=data,
        headers={"Content-Type": "application/json", **headers},
    )


def statuses(copies: list[Copy]) -> list[str | None]:
    return [status_of(c.subscriber_id) for c in copies]


# --- Amazon SES through SNS -------------------------------------------------------------------


def ses_event(copy: Copy, kind: str, **detail: Any) -> dict[str, Any]:
    """Return an SES notification about ``copy`` as SES publishes it to SNS."""
    event: dict[str, Any] = {
        "notificationType": kind,
        "mail": {
            "timestamp": "2024-05-01T09:00:00.000Z",
            "source": copy.envelope_from,
            "messageId": "0102018f-ses-own-id-000000",
            "destination": [copy.email],
            "headersTruncated": False,
            "headers": [
                {"name": "From", "value": "Tip of the Week <tips@example.org>"},
                {"name": "Message-ID", "value": copy.message_id},
            ],
            "commonHeaders": {"messageId": copy.message_id, "subject": "Tip"},
        },
    }
    if kind == "Bounce":
        event["bounce"] = {
            "bounceType": detail.get("bounce_type", "Permanent"),
            "bounceSubType": "General",
            "bouncedRecipients": [
                {
                    "emailAddress": copy.email,
                    "action": "failed",
                    "status": detail.get("status", "5.1.1"),
                    "diagnosticCode": detail.get("diagnostic", "smtp; 550 5.1.1 user unknown"),
                }
            ],
        }
    elif kind == "Complaint":
        event["complaint"] = {
            "complainedRecipients": [{"emailAddress": copy.email}],
            "complaintFeedbackType": "abuse",
        }
    return event


@pytest.mark.parametrize("version", ["1", "2"], ids=["SHA1withRSA", "SHA256withRSA"])
def test_an_ses_permanent_bounce_bounces_that_reader(bounce_app, sent, signer, version):
    first, other = sent(2)
    response = post(bounce_app, "ses", signer.message(ses_event(first, "Bounce"), version=version))
    assert response.status_code == 200, response.get_data(as_text=True)
    assert response.json == {
        "results": [f"recorded hard for subscriber {first.subscriber_id} and applied"]
    }
    assert statuses([first, other]) == ["bounced", "confirmed"]
    (row,) = bounce_rows()
    assert (row.kind, row.source, row.status_code) == (BounceKind.HARD, "ses", "5.1.1")
    assert row.delivery_id == first.delivery_id
    assert "user unknown" in row.diagnostic


def test_an_ses_bounce_is_matched_by_message_id_alone(bounce_app, sent, signer):
    (copy,) = sent(1)
    event = ses_event(copy, "Bounce")
    event["mail"]["source"] = BOUNCE_ADDRESS  # as SES reports an envelope sender without VERP
    assert post(bounce_app, "ses", signer.message(event)).status_code == 200
    assert status_of(copy.subscriber_id) == "bounced"


def test_an_ses_transient_bounce_counts_soft(bounce_app, sent, signer):
    (copy,) = sent(1)
    event = ses_event(copy, "Bounce", bounce_type="Transient", status="4.2.2")
    assert post(bounce_app, "ses", signer.message(event)).status_code == 200
    assert status_of(copy.subscriber_id) == "confirmed"
    assert [r.kind for r in bounce_rows()] == [BounceKind.SOFT]


def test_an_ses_complaint_unsubscribes_the_reader(bounce_app, sent, signer):
    (copy,) = sent(1)
    response = post(bounce_app, "ses", signer.message(ses_event(copy, "Complaint"), version="2"))
    assert response.status_code == 200
    assert status_of(copy.subscriber_id) == "unsubscribed"
    assert [(r.kind, r.source) for r in bounce_rows()] == [(BounceKind.COMPLAINT, "ses")]


def test_an_ses_delivery_changes_nothing(bounce_app, sent, signer):
    (copy,) = sent(1)
    response = post(bounce_app, "ses", signer.message(ses_event(copy, "Delivery")))
    assert response.status_code == 200
    assert response.json["results"][0].startswith("ignored:")
    assert status_of(copy.subscriber_id) == "confirmed"
    assert bounce_rows() == []


def test_a_replayed_sns_message_changes_nothing_more(bounce_app, sent, signer, redis_client):
    first, second = sent(2)
    message = signer.message(ses_event(first, "Bounce", bounce_type="Transient", status="4.2.2"))
    assert post(bounce_app, "ses", message).status_code == 200
    again = post(bounce_app, "ses", message)
    assert again.status_code == 200
    assert again.json["results"][0].startswith("duplicate:")
    # Redis forgot (flushed, restarted): the bounce table still records that copy once.
    redis_client.flushdb()
    assert post(bounce_app, "ses", message).json["results"][0].startswith("duplicate:")
    assert [(r.kind, r.subscriber_id) for r in bounce_rows()] == [
        (BounceKind.SOFT, first.subscriber_id)
    ]
    assert statuses([first, second]) == ["confirmed", "confirmed"]


def test_a_tampered_sns_message_is_refused(bounce_app, sent, signer):
    first, other = sent(2)
    message = signer.message(ses_event(first, "Bounce"))
    message["Message"] = json.dumps(ses_event(other, "Complaint"))  # after signing
    response = post(bounce_app, "ses", message)
    assert response.status_code == 401
    assert statuses([first, other]) == ["confirmed", "confirmed"]
    assert bounce_rows() == []


def test_a_message_signed_by_another_key_is_refused(bounce_app, sent, signer):
    (copy,) = sent(1)
    forger = Signer(rsa.generate_private_key(public_exponent=65537, key_size=2048), signer.cert_url)
    assert post(bounce_app, "ses", forger.message(ses_event(copy, "Bounce"))).status_code == 401
    assert status_of(copy.subscriber_id) == "confirmed"


@pytest.mark.parametrize(
    "url",
    [
        "https://localhost:{port}/SimpleNotificationService-test.pem",  # not an allowed host
        "http://127.0.0.1:{port}/SimpleNotificationService-test.pem",  # not https
        "https://sns.eu-west-1.amazonaws.com.forged.example/cert.pem",
    ],
)
def test_a_certificate_from_a_host_not_allowed_is_refused(
    bounce_app, sent, signer, cert_server, url
):
    (copy,) = sent(1)
    forged = Signer(signer.key, url.format(port=cert_server.port))
    fetches = cert_server.fetches
    assert post(bounce_app, "ses", forged.message(ses_event(copy, "Bounce"))).status_code == 401
    assert cert_server.fetches == fetches  # refused before anything was fetched
    assert status_of(copy.subscriber_id) == "confirmed"


@pytest.mark.parametrize(
    "url",
    [
        "https://sns.us-east-1.amazonaws.com.forged.example/cert.pem",
        "https://forged.example/sns.us-east-1.amazonaws.com/cert.pem",
        "https://sns.us-east-1.amazonaws.com@forged.example/cert.pem",
        "http://sns.us-east-1.amazonaws.com/cert.pem",
        "https://sns.us-east-1.amazonaws.com:8443/cert.pem",
        "https://sqs.us-east-1.amazonaws.com/cert.pem",
    ],
)
def test_without_an_override_only_sns_hosts_are_trusted(url):
    with pytest.raises(Unauthenticated):
        signing_key(url, frozenset())


def test_a_topic_not_configured_is_refused(bounce_app, sent, signer):
    (copy,) = sent(1)
    message = signer.message(ses_event(copy, "Bounce"), TopicArn=TOPIC + "-other")
    assert post(bounce_app, "ses", message).status_code == 401
    assert status_of(copy.subscriber_id) == "confirmed"


def test_a_subscription_confirmation_is_logged_not_visited(bounce_app, signer, caplog):
    url = "https://sns.eu-west-1.amazonaws.com/?Action=ConfirmSubscription&Token=abc"
    message = signer.message(
        None, Type="SubscriptionConfirmation", Token="abc", SubscribeURL=url, Message="confirm"
    )
    response = post(bounce_app, "ses", message)
    assert response.status_code == 200
    assert "SubscribeURL" in response.json["results"][0]
    assert url in caplog.text
    assert bounce_rows() == []


# --- Mailgun ----------------------------------------------------------------------------------


def mailgun(event: dict[str, Any], *, token: str | None = None, at: float | None = None):
    """Return a Mailgun webhook body carrying ``event``, signed with the webhook key."""
    timestamp, token = str(int(at or time.time())), token or uuid.uuid4().hex
    signature = hmac.new(MAILGUN_KEY.encode(), (timestamp + token).encode(), hashlib.sha256)
    return {
        "signature": {"timestamp": timestamp, "token": token, "signature": signature.hexdigest()},
        "event-data": event,
    }


def mailgun_event(copy: Copy, event: str, **fields: Any) -> dict[str, Any]:
    return {
        "event": event,
        "id": uuid.uuid4().hex,
        "timestamp": time.time(),
        "recipient": copy.email,
        "envelope": {"sender": BOUNCE_ADDRESS, "targets": copy.email},
        "message": {"headers": {"message-id": copy.message_id.strip("<>"), "to": copy.email}},
        **fields,
    }


def failed(copy: Copy, severity: str, reason: str, code: int, text: str) -> dict[str, Any]:
    status = {"code": code, "message": text, "attempt-no": 1, "description": ""}
    return mailgun_event(
        copy, "failed", severity=severity, reason=reason, **{"delivery-status": status}
    )


def test_a_mailgun_permanent_failure_bounces_the_reader(bounce_app, sent):
    first, other = sent(2)
    event = failed(first, "permanent", "bounce", 550, "5.1.1 The email account does not exist")
    response = post(bounce_app, "mailgun", mailgun(event))
    assert response.status_code == 200, response.get_data(as_text=True)
    assert statuses([first, other]) == ["bounced", "confirmed"]
    assert [(r.kind, r.source) for r in bounce_rows()] == [(BounceKind.HARD, "mailgun")]


def test_a_mailgun_temporary_failure_waits_for_the_final_one(bounce_app, sent):
    (copy,) = sent(1)
    retrying = failed(copy, "temporary", "generic", 452, "4.2.2 Mailbox full")
    response = post(bounce_app, "mailgun", mailgun(retrying))
    assert response.json["results"][0].startswith("ignored:")
    assert bounce_rows() == []
    gave_up = failed(copy, "permanent", "old", 452, "4.2.2 Mailbox full")
    assert post(bounce_app, "mailgun", mailgun(gave_up)).status_code == 200
    assert status_of(copy.subscriber_id) == "confirmed"
    assert [r.kind for r in bounce_rows()] == [BounceKind.SOFT]


def test_a_mailgun_complaint_unsubscribes_the_reader(bounce_app, sent):
    (copy,) = sent(1)
    response = post(bounce_app, "mailgun", mailgun(mailgun_event(copy, "complained")))
    assert response.status_code == 200
    assert status_of(copy.subscriber_id) == "unsubscribed"


def test_a_mailgun_token_replayed_with_other_data_changes_nothing(bounce_app, sent):
    first, second = sent(2)
    # Mailgun signs only timestamp and token: whoever saw one webhook could attach any event
    # to them, so a token is taken once.
    signed = mailgun(mailgun_event(first, "delivered"))
    assert post(bounce_app, "mailgun", signed).status_code == 200
    replay = {**signed, "event-data": mailgun_event(second, "complained")}
    response = post(bounce_app, "mailgun", replay)
    assert response.status_code == 200
    assert response.json["results"][0].startswith("duplicate:")
    assert statuses([first, second]) == ["confirmed", "confirmed"]
    assert bounce_rows() == []


@pytest.mark.parametrize("fault", ["signature", "key", "stale", "future", "non-ascii"])
def test_a_bad_or_stale_mailgun_signature_is_refused(bounce_app, sent, fault):
    (copy,) = sent(1)
    at = {"stale": time.time() - 301, "future": time.time() + 301}.get(fault)
    body = mailgun(mailgun_event(copy, "complained"), at=at)
    if fault == "signature":
        body["signature"]["signature"] = "0" * 64
    if fault == "non-ascii":
        body["signature"]["signature"] = "é" * 64
    if fault == "key":
        other = hmac.new(b"another key", b"x", hashlib.sha256).hexdigest()
        body["signature"]["signature"] = other
    assert post(bounce_app, "mailgun", body).status_code == 401
    assert status_of(copy.subscriber_id) == "confirmed"
    assert bounce_rows() == []


def test_a_mailgun_event_about_mail_we_never_sent_changes_nothing(bounce_app, sent):
    (copy,) = sent(1)
    event = mailgun_event(copy, "complained")
    event["message"]["headers"]["message-id"] = FOREIGN_ID.strip("<>")
    event["envelope"]["sender"] = "bounces+d1-00000000@example.org"  # a forged VERP tag
    response = post(bounce_app, "mailgun", mailgun(event))
    assert response.status_code == 200
    assert response.json["results"][0].startswith("unmatched:")
    assert status_of(copy.subscriber_id) == "confirmed"


# --- Postmark ---------------------------------------------------------------------------------


def basic(user: str, password: str) -> dict[str, str]:
    token = base64.b64encode(f"{user}:{password}".encode()).decode()
    return {"Authorization": f"Basic {token}"}


def postmark(copy: Copy, kind: str, **fields: Any) -> dict[str, Any]:
    return {
        "RecordType": "SpamComplaint" if kind == "SpamComplaint" else "Bounce",
        "ID": int(time.time() * 1000) + copy.subscriber_id,
        "Type": kind,
        "MessageID": str(uuid.uuid4()),
        "ServerID": 23,
        "MessageStream": "outbound",
        "Description": "The server was unable to deliver your message.",
        "Details": "smtp;550 5.1.1 The email account that you tried to reach does not exist",
        "Email": copy.email,
        "From": "tips@example.org",
        "BouncedAt": "2024-05-01T09:00:00Z",
        **fields,
    }


def test_a_postmark_hard_bounce_bounces_the_reader(bounce_app, sent):
    first, other = sent(2)
    body = postmark(first, "HardBounce", Metadata={"message_id": first.message_id})
    response = post(bounce_app, "postmark", body, **basic(*POSTMARK))
    assert response.status_code == 200, response.get_data(as_text=True)
    assert statuses([first, other]) == ["bounced", "confirmed"]
    assert [(r.kind, r.source) for r in bounce_rows()] == [(BounceKind.HARD, "postmark")]


def test_a_postmark_spam_complaint_quoting_our_message_unsubscribes(bounce_app, sent):
    (copy,) = sent(1)
    content = f"Feedback-Type: abuse\r\n\r\nMessage-ID: {copy.message_id}\r\nSubject: Tip\r\n"
    body = postmark(copy, "SpamComplaint", Content=content)
    assert post(bounce_app, "postmark", body, **basic(*POSTMARK)).status_code == 200
    assert status_of(copy.subscriber_id) == "unsubscribed"


def test_a_postmark_soft_bounce_counts(bounce_app, sent):
    (copy,) = sent(1)
    body = postmark(copy, "SoftBounce", Metadata={"message_id": copy.message_id})
    assert post(bounce_app, "postmark", body, **basic(*POSTMARK)).status_code == 200
    assert status_of(copy.subscriber_id) == "confirmed"
    assert [r.kind for r in bounce_rows()] == [BounceKind.SOFT]


@pytest.mark.parametrize(
    "headers",
    [
        {},
        basic(POSTMARK[0], "wrong password"),
        basic("someone", POSTMARK[1]),
        {"Authorization": "Basic not-base64!"},
        {"Authorization": "Bearer " + POSTMARK[1]},
    ],
    ids=["none", "password", "user", "garbled", "scheme"],
)
def test_wrong_postmark_credentials_are_refused(bounce_app, sent, headers):
    (copy,) = sent(1)
    body = postmark(copy, "SpamComplaint", Metadata={"message_id": copy.message_id})
    response = post(bounce_app, "postmark", body, **headers)
    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"].startswith("Basic")
    assert status_of(copy.subscriber_id) == "confirmed"
    assert bounce_rows() == []


# --- what every hook refuses ------------------------------------------------------------------


def test_an_oversize_body_is_refused(bounce_app, sent):
    (copy,) = sent(1)
    body = mailgun(mailgun_event(copy, "complained", padding="x" * (1024 * 1024)))
    assert post(bounce_app, "mailgun", body).status_code == 413
    assert status_of(copy.subscriber_id) == "confirmed"


@pytest.mark.parametrize("body", [b"{not json", b"\xff\xfe", b"[1, 2]", b'"text"', b"[" * 100000])
@pytest.mark.parametrize("provider", ["ses", "mailgun", "postmark"])
def test_a_body_that_is_no_notification_is_refused(bounce_app, provider, body):
    response = post(bounce_app, provider, body, **basic(*POSTMARK))
    assert response.status_code == 400
    assert bounce_rows() == []


@pytest.mark.parametrize("provider", ["ses", "mailgun", "postmark", "sendgrid"])
def test_a_provider_not_set_up_is_not_found(make_app, provider):
    app = make_app()
    assert post(app, provider, {"signature": {}}).status_code == 404
