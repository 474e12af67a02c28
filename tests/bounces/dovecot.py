"""A real IMAP and POP3 server for the mailbox tests: Debian's Dovecot, run from a temp dir.

Its own config, on free ports of 127.0.0.1, one passwd-file of test users, Maildirs in the
temp dir, and a certificate from a CA made for the run (``ca`` is the file to trust). When
the tests run as root, Dovecot's login processes drop to its own users, and the mail user
is ``nobody``: the folder is made readable for them.
"""

from __future__ import annotations

import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

from tests.helpers import free_port
from tests.helpers.tls import make_certificates

PASSWORD = "bounce-secret"


def why_not() -> str | None:
    """Return why Dovecot cannot run here, or None when it can."""
    if shutil.which("dovecot") is None:
        return (
            "Dovecot is not installed (apt-get install dovecot-imapd dovecot-pop3d; "
            ".ci/run installs it)"
        )
    return None


CONFIG = """\
instance_name = newsletter-bounce-tests
base_dir = {root}/run
state_dir = {root}/state
log_path = {root}/dovecot.log
info_log_path = {root}/dovecot.log
protocols = imap pop3
listen = 127.0.0.1
ssl = yes
ssl_cert = <{cert}
ssl_key = <{key}
ssl_min_protocol = TLSv1.2
disable_plaintext_auth = no
auth_mechanisms = plain login
first_valid_uid = 1
mail_location = maildir:{root}/mail/%u
default_internal_user = {internal_user}
default_internal_group = {internal_group}
default_login_user = {login_user}
passdb {{
  driver = passwd-file
  args = scheme=PLAIN username_format=%u {root}/users
}}
userdb {{
  driver = static
  args = uid={mail_uid} gid={mail_gid} home={root}/home/%u
}}
service imap-login {{
  inet_listener imap {{
    address = 127.0.0.1
    port = {imap}
  }}
  inet_listener imaps {{
    address = 127.0.0.1
    port = {imaps}
    ssl = yes
  }}
}}
service pop3-login {{
  inet_listener pop3 {{
    address = 127.0.0.1
    port = {pop3}
  }}
  inet_listener pop3s {{
    address = 127.0.0.1
    port = {pop3s}
    ssl = yes
  }}
}}
service stats {{
  unix_listener stats-reader {{
    mode = 0666
  }}
  unix_listener stats-writer {{
    mode = 0666
  }}
}}
"""


@dataclass
class Dovecot:
    root: Path
    ca: Path
    imap: int
    imaps: int
    pop3: int
    pop3s: int
    process: subprocess.Popen[bytes]
    mail_uid: int
    mail_gid: int

    def url(self, scheme: str, user: str, folder: str = "", *, ca: bool = True) -> str:
        """Return a BOUNCE_MAILBOX URL for ``user`` on this server."""
        port = getattr(self, scheme)
        query = f"?ca={self.ca}" if ca else ""
        return f"{scheme}://{user}:{PASSWORD}@127.0.0.1:{port}/{folder}{query}"

    def maildir(self, user: str, folder: str = "") -> Path:
        """Return the Maildir of ``user``'s INBOX (or of a folder, Maildir++ style)."""
        base = self.root / "mail" / user
        return base / f".{folder}" if folder else base

    def deliver(self, user: str, raw: bytes) -> Path:
        """Put one message into ``user``'s INBOX as an MTA would: tmp/, then new/."""
        box = self.maildir(user)
        for sub in ("tmp", "new", "cur"):
            (box / sub).mkdir(parents=True, exist_ok=True)
            os.chown(box / sub, self.mail_uid, self.mail_gid)
        os.chown(box, self.mail_uid, self.mail_gid)
        name = f"{time.time_ns()}.{uuid.uuid4().hex}.bounce-tests"
        tmp = box / "tmp" / name
        tmp.write_bytes(raw)
        os.chown(tmp, self.mail_uid, self.mail_gid)
        return tmp.rename(box / "new" / name)

    def messages(self, user: str, folder: str = "") -> list[Path]:
        """Return the message files in a folder (new/ and cur/)."""
        box = self.maildir(user, folder)
        return [p for sub in ("new", "cur") if (box / sub).is_dir() for p in (box / sub).iterdir()]

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        shutil.rmtree(self.root, ignore_errors=True)


def start(users: list[str]) -> Dovecot:
    """Start Dovecot with these users (password PASSWORD); raise RuntimeError if it fails."""
    # Not under pytest's tmp_path: that is private to root, and Dovecot's own users read here.
    root = Path(tempfile.mkdtemp(prefix="dovecot-bounces-"))
    root.chmod(0o755)
    for sub in ("run", "state", "mail", "home"):
        (root / sub).mkdir()
    made = make_certificates(root)
    ca, cert, key = made.ca, made.cert, made.key
    me = pwd.getpwuid(os.getuid())
    if os.getuid() == 0:
        nobody = pwd.getpwnam("nobody")
        mail_uid, mail_gid = nobody.pw_uid, nobody.pw_gid
        internal, internal_group, login = "dovecot", "dovecot", "dovenull"
        for sub in ("mail", "home"):
            os.chown(root / sub, mail_uid, mail_gid)
    else:
        mail_uid, mail_gid = me.pw_uid, me.pw_gid
        internal = login = me.pw_name
        internal_group = str(me.pw_gid)
    (root / "users").write_text("".join(f"{u}:{{PLAIN}}{PASSWORD}\n" for u in users))
    ports = {name: free_port() for name in ("imap", "imaps", "pop3", "pop3s")}
    conf = root / "dovecot.conf"
    conf.write_text(
        CONFIG.format(
            root=root,
            cert=cert,
            key=key,
            internal_user=internal,
            internal_group=internal_group,
            login_user=login,
            mail_uid=mail_uid,
            mail_gid=mail_gid,
            **ports,
        )
    )
    process = subprocess.Popen(
        ["dovecot", "-F", "-c", str(conf)],
        stdout=subprocess.DEVNULL,
        stderr=open(root / "stderr.log", "wb"),  # noqa: SIM115
    )
    server = Dovecot(root, ca, **ports, process=process, mail_uid=mail_uid, mail_gid=mail_gid)
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        if process.poll() is not None:
            break
        if all(_answers(port) for port in ports.values()):
            return server
        time.sleep(0.1)
    log = "\n".join(
        p.read_text(errors="replace")[-2000:]
        for p in (root / "stderr.log", root / "dovecot.log")
        if p.exists()
    )
    server.stop()
    raise RuntimeError(f"Dovecot did not start: {log.strip() or 'no log'}")


def _answers(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False
