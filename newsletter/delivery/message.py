"""The issue message: rendered once per issue, personalised per recipient in microseconds."""

from __future__ import annotations

import binascii
import hashlib
import hmac
import secrets
import time
from email.message import EmailMessage
from email.policy import SMTP
from email.utils import formatdate

from markupsafe import Markup

from newsletter.mail.body import render_body, slugify
from newsletter.mail.render import Mailer, Rendered
from newsletter.models import Issue

UNSUBSCRIBE_PLACEHOLDER = "UNSUBSCRIBExTOKENxPLACEHOLDER"


class MessageIds:
    """The Message-ID of each copy of one issue: HMAC-derived, the same on every resend."""

    def __init__(self, issue_id: int, secret: bytes, domain: str) -> None:
        self.issue_id = issue_id
        self.domain = domain
        self._mac = hmac.new(secret, digestmod=hashlib.sha256)

    def __call__(self, subscriber_id: int) -> str:
        mac = self._mac.copy()
        mac.update(f"{self.issue_id}.{subscriber_id}".encode())
        digest = mac.hexdigest()
        return f"<issue-{self.issue_id}.sub-{subscriber_id}.{digest[:8]}@{self.domain}>"


def _crlf(text: str) -> str:
    return text.replace("\r\n", "\n").replace("\r", "\n").replace("\n", "\r\n")


def _header_block(headers: list[tuple[str, str]]) -> bytes:
    # Let the stdlib fold and encode these once per issue; only their bytes are reused.
    msg = EmailMessage(policy=SMTP)
    for key, value in headers:
        msg[key] = value
    return msg.as_bytes().split(b"\r\n\r\n", 1)[0] + b"\r\n"


class IssueMessage:
    """An issue rendered once; ``bytes_for`` personalises a copy in a few microseconds."""

    def __init__(
        self,
        mailer: Mailer,
        rendered: Rendered,
        *,
        issue_id: int,
        unsubscribe_base: str,
        secret: bytes,
        list_id: str,
    ) -> None:
        self.mailer = mailer
        self.issue_id = issue_id
        self.unsubscribe_base = unsubscribe_base  # BASE_URL + "/unsubscribe/"
        self.secret = secret
        self.domain = mailer.from_domain
        self._message_id = MessageIds(issue_id, secret, self.domain)
        placeholder = unsubscribe_base + UNSUBSCRIBE_PLACEHOLDER
        # The fixed text around each unsubscribe URL is quoted-printable encoded once here;
        # only the URL is encoded per copy (see _qp_pieces).
        self._text = _qp_pieces(_crlf(rendered.text).split(placeholder))
        self._html = _qp_pieces(_crlf(rendered.html).split(placeholder))
        self._date_second = -1
        self._date = b""
        self.boundary = "=_totw_" + secrets.token_hex(12)
        self._head = _header_block(
            [
                ("From", mailer.mail_from),
                ("Subject", rendered.subject),
                ("MIME-Version", "1.0"),
                ("List-Id", list_id),
                ("List-Unsubscribe-Post", "List-Unsubscribe=One-Click"),
                ("Content-Type", f'multipart/alternative; boundary="{self.boundary}"'),
            ]
        )
        b = self.boundary.encode()
        self._text_open = (
            b"\r\n--" + b + b'\r\nContent-Type: text/plain; charset="utf-8"\r\n'
            b"Content-Transfer-Encoding: quoted-printable\r\n\r\n"
        )
        self._html_open = (
            b"\r\n--" + b + b'\r\nContent-Type: text/html; charset="utf-8"\r\n'
            b"Content-Transfer-Encoding: quoted-printable\r\n\r\n"
        )
        self._close = b"\r\n--" + b + b"--\r\n"

    def _date_header(self) -> bytes:
        second = int(time.time())
        if second != self._date_second:
            self._date = formatdate(second, usegmt=True).encode()
            self._date_second = second
        return self._date

    def bytes_for(
        self, subscriber_id: int, email: str, token: str, *, message_id: str | None = None
    ) -> bytes:
        """Return the complete, signed-if-configured message for one subscriber."""
        url = (self.unsubscribe_base + token).encode()
        try:
            to = email.encode("ascii")
        except UnicodeEncodeError:
            to = _header_block([("To", email)])[4:-2]
        mid = message_id or self._message_id(subscriber_id)
        qp_url = b"=\r\n" + _qp(url) + b"=\r\n"
        data = b"".join(
            (
                self._head,
                b"To: ", to, b"\r\n",
                b"Date: ", self._date_header(), b"\r\n",
                b"Message-ID: ", mid.encode(), b"\r\n",
                b"List-Unsubscribe: <", url, b">\r\n",
                b"\r\nThis is a multi-part message in MIME format.\r\n",
                self._text_open,
                qp_url.join(self._text),
                self._html_open,
                qp_url.join(self._html),
                self._close,
            )
        )  # fmt: skip
        return self.mailer.sign(data)


def _qp_pieces(pieces: list[str]) -> list[bytes]:
    """Quoted-printable encode the text between URLs, each piece on its own.

    The per-copy URL is joined in wrapped in soft line breaks (``=`` CRLF), which decode to
    nothing: the decoded body is the same as encoding the whole text at once, and no encoded
    line grows past 76 characters however the pieces and the URL fall on a line.
    """
    return [_qp(p.encode()) for p in pieces]


def _qp(data: bytes) -> bytes:
    encoded = binascii.b2a_qp(data, istext=True)
    # b2a_qp ends its soft line breaks the way the input ends lines, LF when it has none;
    # our input's newlines are all CRLF already, so a bare LF here is a soft break's.
    return encoded if b"\r\n" in data else encoded.replace(b"\n", b"\r\n")


def render_issue(
    mailer: Mailer, subject: str, body_md: str, slug: str, unsubscribe_url: str
) -> Rendered:
    """Render an issue's email (subject, text, HTML) around one unsubscribe URL."""
    base = mailer.config["BASE_URL"]
    body = render_body(body_md, base)
    return mailer.render(
        "issue",
        {
            "subject": subject,
            "body_html": Markup(body.html),  # already sanitised; never a template
            "body_text": body.text,
            "view_url": f"{base}/archive/{slug}",
            "unsubscribe_url": unsubscribe_url,
        },
    )


def list_id(newsletter_name: str, domain: str) -> str:
    """Return the List-Id header value: the name and a stable id under the sender's domain."""
    return f"{newsletter_name} <{slugify(newsletter_name)}.{domain}>"


def issue_message(
    mailer: Mailer, issue: Issue, secret: bytes, subject_prefix: str = ""
) -> IssueMessage:
    """Render ``issue`` once and return the per-recipient builder."""
    unsubscribe_base = mailer.config["BASE_URL"] + "/unsubscribe/"
    rendered = render_issue(
        mailer,
        subject_prefix + issue.subject,
        issue.body_md,
        issue.slug,
        unsubscribe_base + UNSUBSCRIBE_PLACEHOLDER,
    )
    return IssueMessage(
        mailer,
        rendered,
        issue_id=issue.id,
        unsubscribe_base=unsubscribe_base,
        secret=secret,
        list_id=list_id(mailer.config["NEWSLETTER_NAME"], mailer.from_domain),
    )
