"""TCP listener and connections: byte streams in, bytes out, one id per connection.

How this works: one `TcpListener` per `tcp:` entry of `sip.listen`. Each accepted (or opened)
connection gets an integer id. Bytes received are handed to `on_data(data, peer, "tcp", conn_id,
local)`; the SIP layer frames them (RFC 3261 §18.3, Content-Length). `send(conn_id, data)` writes
to that connection; `on_closed(conn_id)` tells the SIP layer a connection is gone so it can end
the transactions bound to it. It knows no SIP and no call logic.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import socket
from collections.abc import Callable

from mediasrv.transport.udp import Address, DataSink

log = logging.getLogger(__name__)

_ids = itertools.count(1)


class _Connection(asyncio.Protocol):
    def __init__(self, owner: TcpListener) -> None:
        self.owner = owner
        self.id = next(_ids)
        self.transport: asyncio.Transport | None = None
        self.peer: Address = ("", 0)
        self.local: Address = ("", 0)

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        self.peer = transport.get_extra_info("peername")[:2]
        self.local = transport.get_extra_info("sockname")[:2]
        self.owner.connections[self.id] = self

    def data_received(self, data: bytes) -> None:
        self.owner.on_data(data, self.peer, "tcp", self.id, self.local)

    def connection_lost(self, exc: Exception | None) -> None:
        self.owner.connections.pop(self.id, None)
        self.owner.on_closed(self.id)


class TcpListener:
    def __init__(self, on_data: DataSink, on_closed: Callable[[int], None]) -> None:
        self.on_data = on_data
        self.on_closed = on_closed
        self.connections: dict[int, _Connection] = {}
        self._server: asyncio.base_events.Server | None = None

    async def listen(self, host: str, port: int) -> None:
        loop = asyncio.get_running_loop()
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        self._server = await loop.create_server(lambda: _Connection(self), host, port,
                                                family=family, reuse_address=True)

    def peer_of(self, conn_id: int) -> Address | None:
        conn = self.connections.get(conn_id)
        return conn.peer if conn else None

    def find(self, peer: Address) -> int | None:
        """An open connection to `peer`, for responses after a connection id went stale."""
        return next((c.id for c in self.connections.values() if c.peer == peer), None)

    async def connect(self, dest: Address) -> int:
        loop = asyncio.get_running_loop()
        _, conn = await loop.create_connection(lambda: _Connection(self), dest[0], dest[1])
        return conn.id

    def send(self, conn_id: int, data: bytes) -> bool:
        conn = self.connections.get(conn_id)
        if conn is None or conn.transport is None or conn.transport.is_closing():
            return False
        conn.transport.write(data)
        return True

    def close_connection(self, conn_id: int) -> None:
        conn = self.connections.get(conn_id)
        if conn and conn.transport:
            conn.transport.close()

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
        for conn in list(self.connections.values()):
            if conn.transport:
                conn.transport.abort()
        if self._server is not None:
            await self._server.wait_closed()
