"""Development only: read the mail the built-in catcher captured, at /dev/mail."""

from __future__ import annotations

import email
import email.policy
import re
from email.message import EmailMessage
from email.utils import parsedate_to_datetime
from pathlib import Path
from typing import Any

from flask import Blueprint, Flask, abort, current_app, render_template
from markupsafe import Markup, escape

from newsletter.extensions import settings
from newsletter.mail.catcher import mail_folder

bp = Blueprint("dev", __name__, url_prefix="/dev")

# Exactly the names the catcher writes; anything else (../, absolute paths) is a 404.
MAIL_NAME = re.compile(r"\A[0-9]{20}-[0-9a-f]{8}\.eml\Z")
URL = re.compile(r"https?://[^\s<>\"']+")
SHOWN = 200


def register(app: Flask) -> None:
    """Attach /dev/mail, except in production."""
    if not settings(app).production:
        app.register_blueprint(bp)


def _folder() -> Path:
    return mail_folder(current_app.instance_path)


def _read(path: Path) -> EmailMessage:
    return email.message_from_bytes(path.read_bytes(), policy=email.policy.default)


def _summary(path: Path) -> dict[str, Any]:
    msg = _read(path)
    try:
        date = parsedate_to_datetime(msg["Date"]) if msg["Date"] else None
    except (TypeError, ValueError):
        date = None
    return {"name": path.name, "date": date, "to": msg["To"], "subject": msg["Subject"]}


@bp.get("/mail")
def mail_list() -> str:
    """List captured mail, newest first."""
    folder = _folder()
    names = sorted((p for p in folder.glob("*.eml") if MAIL_NAME.match(p.name)), reverse=True)
    return render_template("dev/mail_list.html", mails=[_summary(p) for p in names[:SHOWN]])


def _open(name: str) -> EmailMessage:
    if not MAIL_NAME.match(name):
        abort(404)
    path = _folder() / name
    if not path.is_file():
        abort(404)
    return _read(path)


def _linkify(text: str) -> Markup:
    out, last = [], 0
    for m in URL.finditer(text):
        out.append(escape(text[last : m.start()]))
        url = escape(m.group(0))
        out.append(Markup(f'<a href="{url}">{url}</a>'))
        last = m.end()
    out.append(escape(text[last:]))
    return Markup("").join(out)


@bp.get("/mail/<name>")
def mail_show(name: str) -> str:
    """Show one captured mail: headers, the text part with live links, the HTML part framed."""
    msg = _open(name)
    text = msg.get_body(preferencelist=("plain",))
    html = msg.get_body(preferencelist=("html",))
    html_src = str(html.get_content()) if html is not None else ""
    if html_src:
        # Links in the frame open in the whole tab: the app itself refuses to be framed.
        html_src = '<base target="_top">' + html_src
    headers = [(k, str(v)) for k, v in msg.items()]
    return render_template(
        "dev/mail_show.html",
        name=name,
        subject=msg["Subject"],
        headers=headers,
        text=_linkify(str(text.get_content())) if text is not None else None,
        html_src=html_src,
    )


@bp.get("/mail/<name>/raw")
def mail_raw(name: str) -> Any:
    """Return the message as it arrived, as plain text."""
    _open(name)
    data = (_folder() / name).read_bytes()
    return data, 200, {"Content-Type": "text/plain; charset=utf-8"}
