"""HTTP connections pinned to addresses that passed the outbound address check.

The check (``address.checked_addresses``) resolves a URL's host once and refuses private,
loopback and other internal addresses; connecting by the host name again would resolve it a
second time, and a rebinding DNS server could answer differently. These connections open a
socket to the checked addresses only, while the Host header, TLS's SNI and the certificate
check still use the URL's host. The back catalogue's fetches and the editor's link check use
them; a webhook post has its own, which also watches a whole-request deadline.
"""

from __future__ import annotations

import http.client
import socket
import ssl

from newsletter.webhooks.address import IPAddress


class Pinned(http.client.HTTPConnection):
    """Connect to a checked address, each in the resolver's order, within ``timeout``."""

    def __init__(self, host: str, port: int, addresses: list[IPAddress], timeout: float) -> None:
        super().__init__(host, port, timeout=timeout)
        self.addresses = addresses

    def _open(self) -> socket.socket:
        error: OSError = OSError("could not connect")
        for address in self.addresses:
            try:
                return socket.create_connection((str(address), self.port), self.timeout)
            except OSError as exc:
                error = exc
        raise error

    def connect(self) -> None:
        self.sock = self._open()


class PinnedTLS(Pinned):
    """As ``Pinned``, with TLS whose SNI and certificate check name the URL's host."""

    def connect(self) -> None:
        context = ssl.create_default_context()
        self.sock = context.wrap_socket(self._open(), server_hostname=self.host)


def pinned(scheme: str, host: str, port: int, addresses: list[IPAddress], timeout: float) -> Pinned:
    """Return the connection for ``scheme`` (https or http) to the checked ``addresses``."""
    kind = PinnedTLS if scheme == "https" else Pinned
    return kind(host, port, addresses, timeout)
