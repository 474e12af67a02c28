"""What a check finds: a status, one line for the operator, and the lines behind it."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any


class Status(StrEnum):
    """How a check came out; ``fail`` makes `newsletter doctor` exit non-zero."""

    OK = "ok"
    WARN = "warn"
    FAIL = "fail"


RANK = {Status.OK: 0, Status.WARN: 1, Status.FAIL: 2}


def worst(statuses: Iterable[Status]) -> Status:
    """Return the most serious of ``statuses`` (ok when there are none)."""
    return max(statuses, key=RANK.__getitem__, default=Status.OK)


@dataclass(frozen=True)
class Check:
    """One check's outcome: ``name`` is settings, smtp, spf, dkim, dmarc, bounces or images."""

    name: str
    status: Status
    summary: str
    detail: tuple[str, ...] = ()

    def as_dict(self) -> dict[str, Any]:
        """Return the check as plain JSON-ready values."""
        return {
            "name": self.name,
            "status": self.status.value,
            "summary": self.summary,
            "detail": list(self.detail),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Check:
        """Rebuild a check from ``as_dict``'s output."""
        return cls(
            name=str(data["name"]),
            status=Status(data["status"]),
            summary=str(data["summary"]),
            detail=tuple(str(line) for line in data.get("detail", ())),
        )
