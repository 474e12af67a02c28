"""A real DNS server on 127.0.0.1 (dnslib) answering from a zone each test fills in."""

from __future__ import annotations

import socket
import threading
from typing import Any

from dnslib import AAAA, MX, QTYPE, RCODE, RR, TXT, A, DNSLabel
from dnslib.server import BaseResolver, DNSLogger, DNSServer


class Zone(BaseResolver):
    """Records by (name, type); a name with no records at all answers NXDOMAIN."""

    def __init__(self) -> None:
        self.records: dict[tuple[str, str], list[Any]] = {}
        self.queries: list[tuple[str, str]] = []
        self._lock = threading.Lock()

    def clear(self) -> None:
        with self._lock:
            self.records.clear()
            self.queries.clear()

    def add(self, name: str, rtype: str, rdata: Any) -> None:
        with self._lock:
            self.records.setdefault((name.lower().rstrip("."), rtype), []).append(rdata)

    def txt(self, name: str, *texts: str) -> None:
        """Publish one TXT record per text, split into 255-byte strings as DNS needs."""
        for text in texts:
            raw = text.encode()
            self.add(name, "TXT", TXT([raw[i : i + 255] for i in range(0, len(raw), 255)] or [b""]))

    def a(self, name: str, *addresses: str) -> None:
        for address in addresses:
            self.add(name, "A", A(address))

    def aaaa(self, name: str, *addresses: str) -> None:
        for address in addresses:
            self.add(name, "AAAA", AAAA(address))

    def mx(self, name: str, host: str, preference: int = 10) -> None:
        self.add(name, "MX", MX(host, preference))

    def resolve(self, request: Any, handler: Any) -> Any:
        reply = request.reply()
        name = str(request.q.qname).lower().rstrip(".")
        qtype = QTYPE[request.q.qtype]
        with self._lock:
            self.queries.append((name, qtype))
            exists = any(n == name for n, _t in self.records)
            answers = list(self.records.get((name, qtype), []))
        if not exists:
            reply.header.rcode = RCODE.NXDOMAIN
        for rdata in answers:
            reply.add_answer(RR(DNSLabel(name), getattr(QTYPE, qtype), rdata=rdata, ttl=60))
        return reply


class DnsServer:
    """The zone served over UDP on 127.0.0.1, on a port of its own."""

    def __init__(self) -> None:
        self.zone = Zone()
        self._server = DNSServer(
            self.zone,
            address="127.0.0.1",
            port=0,
            logger=DNSLogger("-request,-reply", prefix=False),
        )
        self.port = int(self._server.server.server_address[1])
        self._server.start_thread()

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def stop(self) -> None:
        self._server.stop()
        self._server.server.server_close()


class SilentDns:
    """A UDP port that takes DNS queries and never answers (a dead or filtered server)."""

    def __init__(self) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.port = int(self.sock.getsockname()[1])

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def close(self) -> None:
        self.sock.close()
