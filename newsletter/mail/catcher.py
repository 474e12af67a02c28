"""The development mail catcher: an aiosmtpd server that keeps each message as a .eml file."""

from __future__ import annotations

import time
import uuid
from pathlib import Path
from typing import Any

from aiosmtpd.controller import Controller


class MaildirHandler:
    """Store every accepted message in one folder, newest last by name."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        folder.mkdir(parents=True, exist_ok=True)

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        name = f"{time.time_ns():020d}-{uuid.uuid4().hex[:8]}.eml"
        tmp = self.folder / (name + ".tmp")
        tmp.write_bytes(envelope.original_content or envelope.content)
        tmp.rename(self.folder / name)  # readers never see half a message
        return "250 Message accepted for delivery"


def mail_folder(instance_path: str | Path) -> Path:
    """Return where captured dev mail is kept."""
    return Path(instance_path) / "devmail"


def start_catcher(instance_path: str | Path, host: str, port: int) -> Controller:
    """Start the catcher in a background thread; return its controller (call .stop())."""
    controller = Controller(MaildirHandler(mail_folder(instance_path)), hostname=host, port=port)
    controller.start()
    return controller
