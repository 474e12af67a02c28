"""The issue message: rendered once per issue, personalised per recipient in microseconds."""

from __future__ import annotations

import binascii
import functools
import hashlib
import hmac
import re
import secrets
import time
from email.message import EmailMessage
from email.policy import SMTP
from email.utils import formatdate

from markupsafe import Markup, escape

from newsletter.mail import merge
from newsletter.mail.body import render_body, slugify
from newsletter.mail.render import Mailer, Rendered
from newsletter.mail.urls import LIST_UNSUBSCRIBE, LIST_UNSUBSCRIBE_POST, ONE_CLICK
from newsletter.models import Issue

UNSUBSCRIBE_PLACEHOLDER = "UNSUBSCRIBExTOKENxPLACEHOLDER"
MANAGE_PLACEHOLDER = "MANAGExTOKENxPLACEHOLDER"
_UNSUBSCRIBE, _MANAGE = 0, 1  # which per-reader URL fills a slot of the encoded body
# The one header spliced per copy: as ReaderLinks.list_unsubscribe_headers spells it.
_LIST_UNSUBSCRIBE = LIST_UNSUBSCRIBE.encode() + b": <"


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
        manage_base: str,
        secret: bytes,
        list_id: str,
        merged: merge.Merged | None = None,
    ) -> None:
        self.mailer = mailer
        self.issue_id = issue_id
        self.unsubscribe_base = unsubscribe_base  # ReaderLinks.unsubscribe_prefix
        self.manage_base = manage_base  # ReaderLinks.manage_prefix
        self.secret = secret
        self.domain = mailer.from_domain
        self._message_id = MessageIds(issue_id, secret, self.domain)
        self.boundary = "=_totw_" + secrets.token_hex(12)
        b = self.boundary.encode()
        text_open = (
            b"\r\n--" + b + b'\r\nContent-Type: text/plain; charset="utf-8"\r\n'
            b"Content-Transfer-Encoding: quoted-printable\r\n\r\n"
        )
        html_open = (
            b"\r\n--" + b + b'\r\nContent-Type: text/html; charset="utf-8"\r\n'
            b"Content-Transfer-Encoding: quoted-printable\r\n\r\n"
        )
        # The whole body once, as bytes: the fixed text around each per-reader URL is
        # quoted-printable encoded here, and each URL's place is a slot filled per copy (see
        # _qp_pieces and bytes_for).
        placeholders = {
            unsubscribe_base + UNSUBSCRIBE_PLACEHOLDER: _UNSUBSCRIBE,
            manage_base + MANAGE_PLACEHOLDER: _MANAGE,
        }
        # Merge field i fills slot kind 2 + 2i in the text part, 3 + 2i in the HTML part.
        self._fields = tuple(merged.fields) if merged else ()
        # Many readers share a name (most often none): their encoded values are reused.
        self._values_for = functools.lru_cache(maxsize=4096)(self._field_slots)
        fields = merged.placeholders() if merged else {}
        body: list[bytes] = [b"\r\nThis is a multi-part message in MIME format.\r\n"]
        slots: list[tuple[int, int]] = []
        for is_html, opening, part in (
            (0, text_open, rendered.text),
            (1, html_open, rendered.html),
        ):
            here = {**placeholders, **{p: 2 + 2 * i + is_html for p, i in fields.items()}}
            pieces, kinds = _split(_crlf(part), here)
            encoded = _qp_pieces(pieces)
            body += (opening, encoded[0])
            for kind, piece in zip(kinds, encoded[1:], strict=True):
                slots.append((len(body), kind))
                body += (b"", piece)
        body.append(b"\r\n--" + b + b"--\r\n")
        self._body = body
        self._slots = tuple(slots)
        self._date_second = -1
        self._date = b""
        # A subject with a merge field gets its Subject header per copy; any other, once.
        self._subject = rendered.subject if any(p in rendered.subject for p in fields) else None
        self._merged = merged
        self._head = _header_block(
            [
                ("From", mailer.mail_from),
                *([] if self._subject else [("Subject", rendered.subject)]),
                ("MIME-Version", "1.0"),
                ("List-Id", list_id),
                (LIST_UNSUBSCRIBE_POST, ONE_CLICK),
                ("Content-Type", f'multipart/alternative; boundary="{self.boundary}"'),
            ]
        )

    def _date_header(self) -> bytes:
        second = int(time.time())
        if second != self._date_second:
            self._date = formatdate(second, usegmt=True).encode()
            self._date_second = second
        return self._date

    def bytes_for(
        self,
        subscriber_id: int,
        email: str,
        token: str,
        *,
        manage_token: str | None = None,
        message_id: str | None = None,
        name: str = "",
    ) -> bytes:
        """Return the complete, signed-if-configured message for one subscriber.

        ``token`` signs the unsubscribe link, ``manage_token`` the link to the reader's own
        page; a copy for no reader (a test send) may pass one placeholder for both. ``name``
        fills the issue's merge fields, if it has any.
        """
        url = (self.unsubscribe_base + token).encode()
        manage = (self.manage_base + (token if manage_token is None else manage_token)).encode()
        try:
            to = email.encode("ascii")
        except UnicodeEncodeError:
            to = _header_block([("To", email)])[4:-2]
        mid = message_id or self._message_id(subscriber_id)
        qp_urls: tuple[bytes, ...] = (
            b"=\r\n" + _qp(url) + b"=\r\n",
            b"=\r\n" + _qp(manage) + b"=\r\n",
        )
        head = self._head
        if self._fields:
            qp_urls += self._values_for(" ".join(name.split()))
            if self._subject is not None and self._merged is not None:
                subject = self._merged.fill(self._subject, " ".join(name.split()))
                head += _header_block([("Subject", subject)])
        body = self._body.copy()
        for index, kind in self._slots:
            body[index] = qp_urls[kind]
        data = b"".join(
            (
                head,
                b"To: ", to, b"\r\n",
                b"Date: ", self._date_header(), b"\r\n",
                b"Message-ID: ", mid.encode(), b"\r\n",
                _LIST_UNSUBSCRIBE, url, b">\r\n",
                *body,
            )
        )  # fmt: skip
        return self.mailer.sign(data)

    def _field_slots(self, name: str) -> tuple[bytes, ...]:
        """Encode each merge field's value for ``name``: as text, then escaped for HTML."""
        out: list[bytes] = []
        for field in self._fields:
            value = field.value(name)
            for part in (value, str(escape(value))):
                out.append(b"=\r\n" + _qp(part.encode()) + b"=\r\n")
        return tuple(out)


def _split(text: str, placeholders: dict[str, int]) -> tuple[list[str], list[int]]:
    """Cut ``text`` at each placeholder URL: the pieces between, and which URL each cut was."""
    found = re.split("(" + "|".join(map(re.escape, placeholders)) + ")", text)
    return found[::2], [placeholders[p] for p in found[1::2]]


def _qp_pieces(pieces: list[str]) -> list[bytes]:
    """Quoted-printable encode the text between URLs, each piece on its own.

    Each per-copy URL is joined in wrapped in soft line breaks (``=`` CRLF), which decode to
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
    mailer: Mailer,
    subject: str,
    body_md: str,
    slug: str,
    unsubscribe_url: str,
    manage_url: str | None = None,
    *,
    preheader: str = "",
    name: str = "",
) -> Rendered:
    """Render an issue's email (subject, text, HTML) around one reader's two links.

    Without ``manage_url`` (a preview) the link to the reader's own page is a sample one.
    A ``preheader`` goes hidden at the top of the HTML part, for the inbox's preview line.
    Merge fields show ``name`` (or their fallback); a bad one is refused (``Invalid``).
    """
    merged = merge.split(subject, body_md)
    rendered = _render_merged(mailer, merged, slug, unsubscribe_url, manage_url, preheader)
    if not merged.fields:
        return rendered
    name = " ".join(name.split())
    return Rendered(
        merged.fill(rendered.subject, name),
        merged.fill(rendered.text, name),
        merged.fill(rendered.html, name, html=True),
    )


def _render_merged(
    mailer: Mailer,
    merged: merge.Merged,
    slug: str,
    unsubscribe_url: str,
    manage_url: str | None,
    preheader: str,
) -> Rendered:
    """Render the email once with each merge field still a placeholder."""
    subject, body_md = merged.subject, merged.body_md
    links = mailer.links
    body = render_body(body_md, links.base_url)
    return mailer.render(
        "issue",
        {
            "subject": subject,
            "body_html": Markup(body.html),  # already sanitised; never a template
            "body_text": body.text,
            "view_url": links.issue(slug),
            "unsubscribe_url": unsubscribe_url,
            "manage_url": manage_url or links.sample_manage,
            "language": mailer.language,
            "preheader": preheader,
        },
    )


def list_id(newsletter_name: str, domain: str) -> str:
    """Return the List-Id header value: the name and a stable id under the sender's domain."""
    return f"{newsletter_name} <{slugify(newsletter_name)}.{domain}>"


def issue_message(
    mailer: Mailer, issue: Issue, secret: bytes, subject_prefix: str = "", tip: str = ""
) -> IssueMessage:
    """Render ``issue`` once and return the per-recipient builder.

    ``tip``: an evergreen copy's line saying which tip of the series it is ("Tip 12 of 476"),
    put above the body.
    """
    links = mailer.links
    unsubscribe_base, manage_base = links.unsubscribe_prefix, links.manage_prefix
    body_md = f"*{tip}*\n\n{issue.body_md}" if tip else issue.body_md
    merged = merge.split(subject_prefix + issue.subject, body_md, strict=False)
    rendered = _render_merged(
        mailer,
        merged,
        issue.slug,
        unsubscribe_base + UNSUBSCRIBE_PLACEHOLDER,
        manage_base + MANAGE_PLACEHOLDER,
        issue.preheader,
    )
    return IssueMessage(
        mailer,
        rendered,
        issue_id=issue.id,
        unsubscribe_base=unsubscribe_base,
        manage_base=manage_base,
        secret=secret,
        list_id=list_id(mailer.settings.newsletter_name, mailer.from_domain),
        merged=merged if merged.fields else None,
    )
