"""The SMTP relay: connect, EHLO, TLS and login as the sender would; no mail is sent."""

from __future__ import annotations

import smtplib
import socket
import ssl

from newsletter.config import Settings
from newsletter.doctor.names import is_local_host
from newsletter.doctor.report import Check, Status


class _Probe(smtplib.SMTP):
    """smtplib's client, wrapping an implicit-TLS port itself so each stage can be named."""

    def __init__(self, tls: ssl.SSLContext | None, implicit: bool, timeout: float) -> None:
        super().__init__(timeout=timeout)
        self.tls = tls
        self.implicit = implicit
        self.stage = "connect"

    def _get_socket(self, host: str, port: int, timeout: float) -> socket.socket:
        # starttls() checks the certificate against the host the constructor was given, which
        # connect() alone leaves empty.
        self._host = host
        sock = socket.create_connection((host, port), timeout, self.source_address)
        if self.tls is not None and self.implicit:
            self.stage = "TLS handshake"
            try:
                sock = self.tls.wrap_socket(sock, server_hostname=host)
            except BaseException:
                sock.close()
                raise
        self.stage = "greeting"
        return sock


def _text(message: bytes | str) -> str:
    if isinstance(message, bytes):
        message = message.decode("utf-8", "replace")
    return " / ".join(line.strip() for line in message.splitlines() if line.strip())


def _offers(conn: smtplib.SMTP) -> str:
    names = [f"{k.upper()} {' '.join(v.split())}".strip() for k, v in conn.esmtp_features.items()]
    return ", ".join(names) if names else "no extensions"


def _tls_line(conn: smtplib.SMTP, host: str) -> str:
    sock = conn.sock
    if not isinstance(sock, ssl.SSLSocket):
        return "no TLS"
    cipher = sock.cipher()
    name = cipher[0] if cipher else "unknown cipher"
    return f"{sock.version()} ({name}), certificate for {host} verified"


class _Refused(Exception):
    """The relay answered, but not what the stage needs; the message says what it said."""


def _session(conn: _Probe, settings: Settings, stages: list[str]) -> None:
    host, port = settings.smtp_host, settings.smtp_port
    security = settings.smtp_security
    username = settings.smtp_username
    code, message = conn.connect(host, port)
    if code != 220:
        raise _Refused(f"{host}:{port} refused us at connect: {code} {_text(message)}")
    stages.append(f"connect: {code} {_text(message)}")
    conn.stage = "EHLO"
    code, message = conn.ehlo()
    if code != 250:
        raise _Refused(f"the relay refused EHLO: {code} {_text(message)}")
    stages.append(f"EHLO: {code} {_text(message).split(' / ')[0]}; offers {_offers(conn)}")
    if security == "starttls":
        conn.stage = "STARTTLS"
        if not conn.has_extn("starttls"):
            raise _Refused(
                "the relay does not offer STARTTLS although SMTP_SECURITY=starttls "
                "(is SMTP_PORT the submission port, 587?)"
            )
        code, message = conn.starttls(context=conn.tls)
        stages.append(f"STARTTLS: {code} {_text(message)}; {_tls_line(conn, host)}")
        conn.stage = "EHLO after STARTTLS"
        code, message = conn.ehlo()
        if code != 250:
            raise _Refused(f"the relay refused EHLO after STARTTLS: {code} {_text(message)}")
        stages.append(f"EHLO after STARTTLS: {code}; offers {_offers(conn)}")
    elif security == "tls":
        stages.insert(0, f"TLS: {_tls_line(conn, host)}")
    elif conn.has_extn("starttls"):
        stages.append("note: the relay offers STARTTLS; set SMTP_SECURITY=starttls to use it")
    if username:
        conn.stage = "AUTH"
        if not conn.has_extn("auth"):
            raise _Refused(
                "the relay offers no AUTH to log in with SMTP_USERNAME"
                + (" (many offer it only after STARTTLS)" if security == "none" else "")
            )
        code, message = conn.login(username, settings.smtp_password or "")
        stages.append(f"AUTH: {code} {_text(message)} (as {username})")
    elif conn.has_extn("auth"):
        stages.append(
            "note: the relay offers AUTH but SMTP_USERNAME is not set; fine if it takes mail "
            "from this machine by its address"
        )
    try:
        conn.quit()
    except (smtplib.SMTPException, OSError):
        pass  # every answer that matters is in; the sender ignores a lost QUIT too


def _failure(exc: Exception, conn: _Probe, settings: Settings, wait: float) -> str:
    """Say in one line what went wrong at which stage."""
    host = settings.smtp_host
    where, stage = f"{host}:{settings.smtp_port}", conn.stage
    # smtplib reports a read that timed out as a disconnection: say which it was.
    timed_out = isinstance(exc, TimeoutError) or (
        isinstance(exc, smtplib.SMTPServerDisconnected)
        and isinstance(exc.__context__, TimeoutError)
    )
    if timed_out:
        return f"no answer from {where} within {wait:g} s at {stage}"
    if isinstance(exc, _Refused):
        return str(exc)
    if isinstance(exc, ssl.SSLCertVerificationError):
        return (
            f"{stage}: the relay's certificate is not trusted ({exc.verify_message}); "
            "a private CA's certificate can be named in SSL_CERT_FILE"
        )
    if isinstance(exc, ssl.SSLError):
        return f"{stage} failed: {exc.reason or exc}"
    if isinstance(exc, smtplib.SMTPAuthenticationError):
        return (
            f"the relay refused our login as {settings.smtp_username}: "
            f"{exc.smtp_code} {_text(exc.smtp_error)}"
        )
    if isinstance(exc, smtplib.SMTPServerDisconnected):
        return f"{where} closed the connection at {stage}"
    if isinstance(exc, smtplib.SMTPResponseException):
        return f"the relay refused {stage}: {exc.smtp_code} {_text(exc.smtp_error)}"
    if isinstance(exc, smtplib.SMTPException):
        return f"{stage}: {exc}"
    if isinstance(exc, ConnectionRefusedError):
        return f"cannot connect to {where}: connection refused (nothing listens there)"
    if isinstance(exc, socket.gaierror):
        return f"cannot find the relay {host}: {exc.strerror}"
    return f"cannot connect to {where}: {getattr(exc, 'strerror', None) or exc}"


def check_smtp(settings: Settings, timeout: float | None = None) -> Check:
    """Open a session with the relay as the sender does and log in; send nothing."""
    host, port = settings.smtp_host, settings.smtp_port
    security = settings.smtp_security
    wait = float(timeout or settings.smtp_timeout or 30)
    # The same trust as the sender's (mail/smtp.py): the system's CA store, or SSL_CERT_FILE.
    context = ssl.create_default_context() if security != "none" else None
    conn = _Probe(context, security == "tls", wait)
    stages: list[str] = []
    try:
        _session(conn, settings, stages)
    except (_Refused, smtplib.SMTPException, OSError) as exc:  # ssl.SSLError is an OSError
        return Check("smtp", Status.FAIL, _failure(exc, conn, settings, wait), tuple(stages))
    finally:
        conn.close()
    done = ["EHLO"]
    if security != "none":
        done.append("TLS")
    if settings.smtp_username:
        done.append("our login")
    said = " and ".join([", ".join(done[:-1]), done[-1]] if len(done) > 1 else done)
    plain = " (without TLS)" if security == "none" and not is_local_host(host) else ""
    summary = f"{host}:{port} answered {said}{plain}; nothing was sent"
    return Check("smtp", Status.OK, summary, tuple(stages))
