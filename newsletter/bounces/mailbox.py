"""Fetch bounces and complaints from a mailbox (IMAP or POP3), record each, then clear it.

A message leaves the mailbox only after ``take`` has returned, which means its notices are
committed: a crash or a lost connection in between leaves it there, and the next poll takes
it in again, which records nothing twice (intake dedupes). On IMAP a handled message is
moved to a ``Processed`` folder, created if need be, so an operator can still read what came
in; where that folder cannot be had it is flagged ``\\Deleted`` and expunged. On POP3 it is
deleted. A message over the size cap is removed unread; one that cannot be parsed is
removed too (it would only come back every poll), and is logged.

TLS is verified always: ``imaps``/``pop3s`` from the first byte, ``imap``/``pop3`` with
STARTTLS/STLS, which must be offered unless the server is on this machine (loopback). The
URL's ``?ca=FILE`` names the CA to trust for a server with a private certificate.
"""

from __future__ import annotations

import imaplib
import ipaddress
import logging
import poplib
import re
import ssl
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from newsletter.bounces.parse import MAX_INPUT
from newsletter.config import Mailbox

log = logging.getLogger(__name__)

PROCESSED = "Processed"
PER_POLL = 200  # messages one poll handles at most; the rest wait for the next
TIMEOUT = 30.0

Take = Callable[[bytes, str], list[str]]


class MailboxError(Exception):
    """The mailbox could not be reached or read; the next poll tries again."""


@dataclass
class Polled:
    """What one poll did."""

    handled: int = 0  # messages taken in and removed from the mailbox
    left: int = 0  # messages still there (over the per-poll count, or stopped early)
    lines: list[str] = field(default_factory=list)


def poll(
    mailbox: Mailbox,
    take: Take,
    *,
    go_on: Callable[[], bool] = lambda: True,
    per_poll: int = PER_POLL,
    max_size: int = MAX_INPUT,
    timeout: float = TIMEOUT,
) -> Polled:
    """Take in every message waiting in ``mailbox``; ``go_on`` is asked before each one.

    Raise MailboxError when the server cannot be reached or refuses us, and whatever
    ``take`` raises when a message could not be recorded (that message stays).
    """
    reader = _pop3 if mailbox.scheme.startswith("pop3") else _imap
    try:
        return reader(mailbox, take, go_on, per_poll, max_size, timeout)
    except (OSError, imaplib.IMAP4.error, poplib.error_proto) as exc:
        raise MailboxError(f"{mailbox}: {exc}") from None


def _tls(mailbox: Mailbox) -> ssl.SSLContext:
    return ssl.create_default_context(cafile=mailbox.ca)


def _on_this_machine(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _no_tls(mailbox: Mailbox, word: str) -> MailboxError:
    return MailboxError(
        f"{mailbox}: the server offers no {word}; refusing to send the password in clear "
        f"(use {mailbox.scheme}s://)"
    )


def _refused(size: int, max_size: int) -> str:
    log.warning("mailbox message of %d bytes removed unread (over %d)", size, max_size)
    return f"refused: the message is over {max_size} bytes; nothing recorded"


# --- IMAP -------------------------------------------------------------------------------------


def _imap(
    mailbox: Mailbox,
    take: Take,
    go_on: Callable[[], bool],
    per_poll: int,
    max_size: int,
    timeout: float,
) -> Polled:
    if mailbox.scheme == "imaps":
        conn: imaplib.IMAP4 = imaplib.IMAP4_SSL(
            mailbox.host, mailbox.port, ssl_context=_tls(mailbox), timeout=timeout
        )
    else:
        conn = imaplib.IMAP4(mailbox.host, mailbox.port, timeout=timeout)
        if "STARTTLS" in conn.capabilities:
            conn.starttls(_tls(mailbox))
        elif not _on_this_machine(mailbox.host):
            conn.shutdown()
            raise _no_tls(mailbox, "STARTTLS")
    try:
        conn.login(mailbox.username, mailbox.password)
        return _imap_folder(conn, mailbox, take, go_on, per_poll, max_size)
    finally:
        try:
            conn.logout()
        except (OSError, imaplib.IMAP4.error):
            pass  # the connection is gone already; nothing is left open


def _imap_folder(
    conn: imaplib.IMAP4,
    mailbox: Mailbox,
    take: Take,
    go_on: Callable[[], bool],
    per_poll: int,
    max_size: int,
) -> Polled:
    # The capabilities before login (what imaplib keeps) lack MOVE and UIDPLUS on most servers.
    typ, data = conn.capability()
    caps = set(_text(data[-1]).upper().split()) if typ == "OK" and data else set()
    typ, data = conn.select(_quoted(mailbox.folder))
    if typ != "OK":
        raise MailboxError(f"{mailbox}: cannot open the folder: {_text(data[-1])}")
    typ, data = conn.uid("SEARCH", "UNDELETED")
    uids = _text(data[0]).split() if typ == "OK" and data and data[0] else []
    done = Polled(left=max(len(uids) - per_poll, 0))
    target: str | None | bool = False  # False: not looked for yet
    for position, uid in enumerate(uids[:per_poll]):
        if not go_on():
            done.left = len(uids) - position
            break
        size = _imap_size(conn, uid)
        too_big = size > max_size
        lines = [_refused(size, max_size)] if too_big else take(_imap_fetch(conn, uid), "")
        if target is False:
            target = _processed_folder(conn, mailbox)
        _imap_remove(conn, uid, target, caps)
        done.handled += 1
        done.lines += lines
    return done


def _text(item: Any) -> str:
    if isinstance(item, tuple):
        item = item[0]
    if isinstance(item, bytes):
        return item.decode("utf-8", errors="replace")
    return "" if item is None else str(item)


def _quoted(folder: str) -> str:
    return '"' + folder.replace("\\", "\\\\") + '"'


def _imap_size(conn: imaplib.IMAP4, uid: str) -> int:
    typ, data = conn.uid("FETCH", uid, "(RFC822.SIZE)")
    found = re.search(r"RFC822\.SIZE (\d+)", " ".join(_text(d) for d in data or []))
    if typ != "OK" or found is None:
        raise MailboxError(f"the server gave no size for message {uid}")
    return int(found.group(1))


def _imap_fetch(conn: imaplib.IMAP4, uid: str) -> bytes:
    typ, data = conn.uid("FETCH", uid, "(BODY.PEEK[])")
    for item in data or []:
        if typ == "OK" and isinstance(item, tuple) and isinstance(item[1], bytes):
            return item[1]
    raise MailboxError(f"the server did not return message {uid}")


def _processed_folder(conn: imaplib.IMAP4, mailbox: Mailbox) -> str | None:
    """Return the folder handled mail goes to, creating it if need be; None if it cannot be."""
    if mailbox.folder.lower() == PROCESSED.lower():
        return None
    typ, found = conn.list('""', _quoted(PROCESSED))
    if typ == "OK" and any(found):
        return PROCESSED
    try:
        typ, answer = conn.create(_quoted(PROCESSED))
        why = _text(answer[-1]) if answer else ""
    except imaplib.IMAP4.error as exc:
        typ, why = "NO", str(exc)
    if typ == "OK":
        return PROCESSED
    log.warning("cannot create IMAP folder %s (%s): handled mail is deleted", PROCESSED, why)
    return None


def _imap_remove(conn: imaplib.IMAP4, uid: str, target: str | None | bool, caps: set[str]) -> None:
    if isinstance(target, str):
        if "MOVE" in caps:
            typ, data = conn.uid("MOVE", uid, _quoted(target))
            if typ == "OK":
                return
        else:
            typ, data = conn.uid("COPY", uid, _quoted(target))
        if typ != "OK":
            log.warning("cannot move message %s to %s (%s): deleting it", uid, target, data)
    typ, data = conn.uid("STORE", uid, "+FLAGS.SILENT", r"(\Deleted)")
    if typ != "OK":
        raise MailboxError(f"cannot delete message {uid}: {_text(data[-1])}")
    # UID EXPUNGE removes only this one; a plain EXPUNGE also whatever else is flagged.
    if "UIDPLUS" in caps:
        conn.uid("EXPUNGE", uid)
    else:
        conn.expunge()


# --- POP3 -------------------------------------------------------------------------------------


class _LongLines:
    """poplib refuses lines over 2,048 bytes; a bounce quoting HTML mail has longer ones."""

    file: Any

    def _getline(self) -> tuple[bytes, int]:
        line: bytes = self.file.readline(MAX_INPUT + 1)
        if not line:
            raise poplib.error_proto("-ERR EOF")
        if len(line) > MAX_INPUT:
            raise poplib.error_proto("line too long")
        return line.rstrip(b"\r\n"), len(line)


class _POP3(_LongLines, poplib.POP3):
    pass


class _POP3SSL(_LongLines, poplib.POP3_SSL):
    pass


def _pop3(
    mailbox: Mailbox,
    take: Take,
    go_on: Callable[[], bool],
    per_poll: int,
    max_size: int,
    timeout: float,
) -> Polled:
    if mailbox.scheme == "pop3s":
        conn: poplib.POP3 = _POP3SSL(
            mailbox.host, mailbox.port, timeout=timeout, context=_tls(mailbox)
        )
    else:
        conn = _POP3(mailbox.host, mailbox.port, timeout=timeout)
        if "STLS" in _pop3_capabilities(conn):
            conn.stls(_tls(mailbox))
        elif not _on_this_machine(mailbox.host):
            conn.close()
            raise _no_tls(mailbox, "STLS")
    # QUIT is what makes POP3 deletions happen: it is sent also when ``take`` failed, so the
    # messages handled before that one are gone and only that one comes back.
    try:
        conn.user(mailbox.username)
        conn.pass_(mailbox.password)
        _resp, listing, _octets = conn.list()
        messages = [tuple(int(x) for x in entry.split()[:2]) for entry in listing]
        done = Polled(left=max(len(messages) - per_poll, 0))
        for position, (number, size) in enumerate(messages[:per_poll]):
            if not go_on():
                done.left = len(messages) - position
                break
            if size > max_size:
                lines = [_refused(size, max_size)]
            else:
                _resp, body, _octets = conn.retr(number)
                lines = take(b"\r\n".join(body) + b"\r\n", "")
            conn.dele(number)
            done.handled += 1
            done.lines += lines
        return done
    finally:
        try:
            conn.quit()
        except (OSError, poplib.error_proto):
            conn.close()


def _pop3_capabilities(conn: poplib.POP3) -> dict[str, list[str]]:
    try:
        return conn.capa()
    except poplib.error_proto:
        return {}  # a server without CAPA offers no STLS either
