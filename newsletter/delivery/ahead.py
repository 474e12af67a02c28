"""Send the record of an accepted copy to PostgreSQL without waiting for its answer.

A batch used to wait for each record's round trip before it built the next copy and spoke
to the relay again: for that time (a quarter of a copy's time into a fast relay) the relay
sat idle. Now the record of copy k goes out on the recorder's connection as soon as the
relay has taken k, and its answer is read once the relay has taken copy k+1's envelope,
before k+1's data ends. So the duplicate bound is unchanged: when a worker dies, at most the
one copy in flight on its connection was accepted and not recorded.

libpq's asynchronous calls do this on the batch's own thread, with no thread or pipeline
of our own: ``send_query_prepared`` now, ``get_result`` later. Between the two nothing else
uses the connection (the batch collects the answer before any other use of its recorder).
"""

from __future__ import annotations

import re
import secrets
import select
from datetime import datetime
from typing import Any

import psycopg
from psycopg import pq

_PARAM = re.compile(r"%\((\w+)\)s")


class RecordAhead:
    """One prepared-once statement sent on a psycopg connection, its answer read later."""

    def __init__(self, connection: psycopg.Connection[Any], sql: str, base: dict[str, Any]):
        self._pg = connection.pgconn
        names: list[str] = []

        def number(match: re.Match[str]) -> str:
            names.append(match.group(1))
            return f"${len(names)}"

        # Prepared once for the batch: each record is then a Bind and Execute, not a parse
        # and plan (the name is the batch's own: the pooled connection outlives it).
        self._name = f"record_sent_{secrets.token_hex(6)}".encode()
        made = self._pg.prepare(self._name, _PARAM.sub(number, sql).encode())
        if made.status != pq.ExecStatus.COMMAND_OK:
            raise psycopg.OperationalError((made.error_message or b"").decode(errors="replace"))
        # The constants (statuses, NULLs) are put in text once; each record sets the rest.
        self._params = [_text(base[n]) for n in names]
        self._slots: dict[str, list[int]] = {}
        for i, n in enumerate(names):
            self._slots.setdefault(n, []).append(i)
        self.waiting = False

    def start(self, **values: Any) -> None:
        """Send the statement with ``values`` over the base parameters; do not wait."""
        params = list(self._params)
        for name, value in values.items():
            text = _text(value)
            for i in self._slots[name]:
                params[i] = text
        self._pg.send_query_prepared(self._name, params)
        self.waiting = True
        if self._pg.flush() != 0:  # pragma: no cover - a blocking connection sends it all
            raise psycopg.OperationalError("the record could not be sent whole")

    def finish(self) -> int:
        """Wait for the statement sent last; return how many rows it changed."""
        pg = self._pg
        self.waiting = False
        pg.consume_input()
        while pg.is_busy():
            select.select([pg.socket], [], [])
            pg.consume_input()
        changed, error = 0, ""
        while (result := pg.get_result()) is not None:
            if result.status == pq.ExecStatus.COMMAND_OK:
                changed = int(result.command_tuples or 0)
            else:
                error = (result.error_message or b"").decode(errors="replace").strip()
        if error:
            # A killed backend, a lost line, a deadlock: the caller records again on a fresh
            # connection, as it does when the synchronous record fails.
            raise psycopg.OperationalError(error)
        return changed

    def close(self) -> None:
        """Forget the prepared statement (the connection goes back to the pool)."""
        if self.waiting:
            self.finish()  # a batch that ended on an error: read its last answer first
        self._pg.exec_(b"DEALLOCATE " + self._name)


def _text(value: Any) -> bytes | None:
    if value is None:
        return None
    if isinstance(value, datetime):
        return value.isoformat().encode()
    if isinstance(value, bool):
        return b"true" if value else b"false"
    return str(value).encode()
