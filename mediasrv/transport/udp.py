"""UDP listener: datagrams in, datagrams out; nothing else.

How this works: one `UdpListener` per `udp:` entry of `sip.listen`. Every datagram received is
handed to `on_data(data, source, "udp", None, local)`; `send(data, dest)` writes one. It knows no
SIP and no call logic (RFC 3261 §18 framing for UDP is one message per datagram).
"""

from __future__ import annotations

import asyncio
import logging
import socket
from collections.abc import Callable

log = logging.getLogger(__name__)

Address = tuple[str, int]
DataSink = Callable[[bytes, Address, str, "int | None", Address], None]


class UdpListener(asyncio.DatagramProtocol):
    def __init__(self, on_data: DataSink) -> None:
        self._on_data = on_data
        self._transport: asyncio.DatagramTransport | None = None
        self.local: Address = ("", 0)

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = transport  # type: ignore[assignment]
        self.local = transport.get_extra_info("sockname")[:2]

    def datagram_received(self, data: bytes, addr: tuple) -> None:
        self._on_data(data, (addr[0], addr[1]), "udp", None, self.local)

    def error_received(self, exc: Exception) -> None:
        # ICMP errors (port unreachable) for an earlier send: nothing to undo here.
        log.debug("udp %s: %s", self.local, exc)

    def send(self, data: bytes, dest: Address) -> None:
        if self._transport is not None and not self._transport.is_closing():
            self._transport.sendto(data, dest)

    def close(self) -> None:
        if self._transport is not None:
            self._transport.close()


async def open_udp(host: str, port: int, on_data: DataSink) -> UdpListener:
    """Binds host:port (IPv4 or IPv6); raises OSError when it cannot."""
    loop = asyncio.get_running_loop()
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    _, proto = await loop.create_datagram_endpoint(
        lambda: UdpListener(on_data), local_addr=(host, port), family=family)
    return proto
