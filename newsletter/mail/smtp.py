"""Deliver over SMTP: one reused connection, pipelined where offered; classify every answer."""

from __future__ import annotations

import smtplib
import ssl
from collections.abc import Callable
from email.utils import parseaddr

import idna

from newsletter.config import Settings
from newsletter.mail.refusals import Stage, Verdict, enhanced_code, judge


class SMTPRefusal(Exception):
    """An SMTP answer other than success, read for what it means (``mail.refusals``)."""

    verdict = Verdict.RETRY

    def __init__(
        self, text: str, *, code: int = 0, stage: Stage = Stage.CONNECT, why: str = ""
    ) -> None:
        super().__init__(f"{code} {text}" if code else text)
        self.code, self.stage, self.why = code, stage, why
        self.enhanced = enhanced_code(text)


class SMTPTemporaryError(SMTPRefusal):
    """The server or the network said 'not now' (4xx, dropped connection, timeout): retry later.

    ``maybe_accepted`` is True when the line went dead after the whole message was handed
    over and before the server's answer: the server may have taken it.
    """

    maybe_accepted = False


def unreachable(text: str, stage: Stage, *, maybe_accepted: bool = False) -> SMTPTemporaryError:
    """Return the error for a relay that cannot be reached or stopped answering: wait for it."""
    error = SMTPTemporaryError(text, stage=stage, why="the relay does not answer")
    error.verdict = Verdict.WAIT
    error.maybe_accepted = maybe_accepted
    return error


class SMTPRelayError(SMTPTemporaryError):
    """The relay refuses *us* (our sender, our quota, our host): no reader is at fault."""

    verdict = Verdict.RELAY


class SMTPPermanentError(SMTPRefusal):
    """This copy is refused for good; ``verdict`` says whether the reader's address is why."""

    def __init__(
        self,
        code: int,
        message: str,
        *,
        stage: Stage = Stage.RCPT,
        verdict: Verdict = Verdict.HARD,
        why: str = "",
    ) -> None:
        super().__init__(message, code=code, stage=stage, why=why)
        self.verdict = verdict


class _HookFailed(Exception):
    """The caller's ``before_end`` raised: carried past the handler of the line's own errors."""

    def __init__(self, error: BaseException) -> None:
        super().__init__(str(error))
        self.error = error


class SMTPSender:
    """One SMTP connection, opened lazily and reused for a batch of messages.

    smtplib opens the session (greeting, EHLO, STARTTLS, AUTH); each message is then one mail
    transaction written here. Where the server offers PIPELINING (RFC 2920: Postfix, Exim and
    the big providers do) MAIL, RCPT and DATA go out in one write and their answers are read
    together, two round trips per message instead of four. Addresses are quoted once, and
    the body, already CRLF, is dot-stuffed with a bytes replace rather than smtplib's two
    regular expressions: per message that was as much CPU as the rest of the transaction.
    """

    def __init__(self, settings: Settings) -> None:
        self.host = settings.smtp_host
        self.port = settings.smtp_port
        self.security = settings.smtp_security
        self.username = settings.smtp_username
        self.password = settings.smtp_password
        self.timeout = settings.smtp_timeout or 30.0
        self.envelope_from = parseaddr(settings.mail_from)[1]
        self._conn: smtplib.SMTP | None = None
        self._pipelining = False
        self._size = False
        self._smtputf8 = False

    def __enter__(self) -> SMTPSender:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _open(self) -> smtplib.SMTP:
        # Loading the CA store costs ~17 ms: only pay it when the session uses TLS.
        context = ssl.create_default_context() if self.security != "none" else None
        stage = Stage.CONNECT
        try:
            if self.security == "tls":
                conn: smtplib.SMTP = smtplib.SMTP_SSL(
                    self.host, self.port, timeout=self.timeout, context=context
                )
            else:
                conn = smtplib.SMTP(self.host, self.port, timeout=self.timeout)
                stage = Stage.EHLO
                if self.security == "starttls":
                    conn.starttls(context=context)
            stage = Stage.EHLO
            conn.ehlo_or_helo_if_needed()
            if self.username:
                stage = Stage.AUTH
                conn.login(self.username, self.password or "")
        except smtplib.SMTPResponseException as exc:
            raise classify(exc.smtp_code, exc.smtp_error, _session_stage(exc, stage)) from None
        except (smtplib.SMTPException, OSError) as exc:
            raise unreachable(f"cannot connect to {self.host}:{self.port}: {exc}", stage) from None
        self._pipelining = bool(conn.has_extn("pipelining"))
        self._size = bool(conn.has_extn("size"))
        self._smtputf8 = bool(conn.has_extn("smtputf8"))
        return conn

    def send(
        self,
        to: str,
        data: bytes,
        sender: str | None = None,
        before_end: Callable[[], object] | None = None,
    ) -> None:
        """Hand one message to the server, from ``sender`` (default MAIL_FROM's address).

        ``before_end`` runs once the server has taken the envelope and before the data goes:
        a batch reads there the answer to the record of the copy before (``delivery.ahead``).
        Should it raise, the line is dropped without ending the data: the server keeps nothing.
        Raise an SMTPRefusal subclass that says what a refusal means (``mail.refusals``).
        """
        if self._conn is None:
            self._conn = self._open()
        sender_b, recipient, utf8 = envelope(sender or self.envelope_from, to)
        if utf8 and not self._smtputf8:
            raise SMTPPermanentError(
                553, "the mail server does not accept internationalised addresses (no SMTPUTF8)"
            )
        options = b""
        if self._size:
            options += b" SIZE=%d" % len(data)
        if utf8:
            options += b" SMTPUTF8"
        commands = (
            b"MAIL FROM:<" + sender_b + b">" + options + b"\r\n",
            b"RCPT TO:<" + recipient + b">\r\n",
            b"DATA\r\n",
        )
        conn = self._conn
        stage = Stage.MAIL
        try:
            if self._pipelining:
                conn.send(b"".join(commands))
                replies = [conn.getreply() for _ in commands]
            else:
                replies = []
                for command in commands:
                    conn.send(command)
                    replies.append(reply := conn.getreply())
                    if reply[0] not in (250, 251, 354):
                        break
            stages = (Stage.MAIL, Stage.RCPT, Stage.DATA)
            refusal = next(
                ((r, stages[i]) for i, r in enumerate(replies[:2]) if r[0] not in (250, 251)),
                None,
            )
            if replies[-1][0] != 354 or len(replies) < 3:
                refusal = refusal or (replies[-1], stages[len(replies) - 1])
            elif refusal is not None:
                # The server took DATA although the envelope failed: end the empty message.
                conn.send(b".\r\n")
                conn.getreply()
            else:
                if before_end is not None:
                    self._before_end(before_end)
                stage = Stage.END
                conn.send(dot_stuffed(data))
                code, message = conn.getreply()
                if code != 250:
                    refusal = ((code, message), Stage.END)
        except _HookFailed as failed:
            raise failed.error from None
        except (smtplib.SMTPException, OSError) as exc:
            self.close()
            # Lost after the message went out: whether the server took it is unknown.
            lost = stage is Stage.END
            raise unreachable(f"connection lost: {exc}", stage, maybe_accepted=lost) from None
        if refusal is not None:
            (code, message), stage = refusal
            self._after_refusal(code)
            raise classify(code, message, stage)

    def _before_end(self, hook: Callable[[], object]) -> None:
        try:
            hook()
        except BaseException as exc:
            # Mid-DATA: a QUIT would be read as data. Drop the line; the server discards
            # the unfinished message.
            conn, self._conn = self._conn, None
            if conn is not None:
                conn.close()
            raise _HookFailed(exc) from None

    def _after_refusal(self, code: int = 0) -> None:
        # After a refusal the session may be half-way through a transaction: reset it, or drop it.
        if self._conn is None:
            return
        if code == 421:  # the server is closing this channel
            self.close()
            return
        try:
            self._conn.rset()
        except (smtplib.SMTPException, OSError):
            self.close()

    def close(self) -> None:
        """Say QUIT and drop the connection, ignoring a server that is already gone."""
        conn, self._conn = self._conn, None
        if conn is None:
            return
        try:
            conn.quit()
        except (smtplib.SMTPException, OSError):
            try:
                conn.close()
            except OSError:
                pass


def envelope(sender: str, recipient: str) -> tuple[bytes, bytes, bool]:
    """Return both envelope addresses as bytes, and whether they need SMTPUTF8.

    An internationalised domain goes out as its ASCII (IDNA) form; only a non-ASCII local
    part needs the server's SMTPUTF8.
    """
    try:
        return sender.encode("ascii"), recipient.encode("ascii"), False
    except UnicodeEncodeError:
        pass
    pair = [_ascii_domain(sender), _ascii_domain(recipient)]
    try:
        return pair[0].encode("ascii"), pair[1].encode("ascii"), False
    except UnicodeEncodeError:
        return pair[0].encode(), pair[1].encode(), True


def _ascii_domain(address: str) -> str:
    local, at, domain = address.rpartition("@")
    try:
        return local + at + idna.encode(domain, uts46=True).decode("ascii")
    except (idna.IDNAError, UnicodeError):
        return address


def dot_stuffed(data: bytes) -> bytes:
    """Return a message as the DATA phase sends it: leading dots doubled, ended by ``.``.

    ``data`` must already be in SMTP's canonical form, every line ended by CRLF: both of our
    builders (``Mailer.to_bytes`` and ``IssueMessage``) produce exactly that, and the tests
    hold them to it. Checking it here again cost as much as the rest of this function.
    """
    if data.startswith(b"."):
        data = b"." + data
    data = data.replace(b"\r\n.", b"\r\n..")
    if not data.endswith(b"\r\n"):
        data += b"\r\n"
    return data + b".\r\n"


def classify(code: int, message: bytes | str, stage: Stage = Stage.RCPT) -> SMTPRefusal:
    """Turn an SMTP refusal at ``stage`` into the error its verdict calls for."""
    text = _text(message)
    verdict, why = judge(stage, code, text)
    if verdict is Verdict.RELAY:
        return SMTPRelayError(text, code=code, stage=stage, why=why)
    if verdict in (Verdict.RETRY, Verdict.THROTTLED, Verdict.WAIT):
        error = SMTPTemporaryError(text, code=code, stage=stage, why=why)
        # THROTTLED: retried like any "not now", never a bounce; WAIT: the whole send waits
        error.verdict = verdict
        return error
    return SMTPPermanentError(code, text, stage=stage, verdict=verdict, why=why)


def _session_stage(exc: smtplib.SMTPResponseException, reached: Stage) -> Stage:
    """Return where a session-opening refusal came: smtplib's error class says it best."""
    if isinstance(exc, smtplib.SMTPConnectError):
        return Stage.CONNECT
    if isinstance(exc, smtplib.SMTPAuthenticationError):
        return Stage.AUTH
    if isinstance(exc, smtplib.SMTPHeloError):
        return Stage.EHLO
    return reached


def _text(message: bytes | str) -> str:
    if isinstance(message, bytes):
        message = message.decode("utf-8", "replace")
    return " ".join(message.split())[:250]
