"""TCP listener and connections: byte streams in, bytes out, one id per connection.

How this works: one `TcpListener` per `tcp:` entry of `sip.listen` (and, through its `TlsListener`
subclass, per `tls:` entry). Each accepted (or opened) connection gets an integer id. Bytes
received are handed to `on_data(data, peer, transport, conn_id, local)`; the SIP layer frames
them (RFC 3261 §18.3, Content-Length). `send(conn_id, data)` writes to that connection;
`on_closed(conn_id)` tells the SIP layer a connection is gone so it can end the transactions
bound to it. An accepted connection from a source the `refuse` check names (a banned address),
or beyond `max_per_source` open connections from one address, is closed at once; each
connection remembers when it opened and last received, for the driver's reaper (slow and idle
connections). It knows no SIP and no call logic.

Connection reuse (RFC 5923): `alias(conn_id, host, port)` makes a connection the one `find()`
returns for `host`:`port` (the driver calls it for a request whose top Via carried `alias`),
once `may_alias` agrees that the connection speaks for that address. Over TCP there is no
certificate, so only the connection's own source address may be aliased (any port on it): a
client can take over requests to nobody's address but its own. `TlsListener` also accepts a
host its verified client certificate names. An alias ends with its connection, and a newer
alias for the same address replaces an older one.
"""

from __future__ import annotations

import asyncio
import ipaddress
import itertools
import logging
import socket
from collections import Counter
from collections.abc import Callable
from typing import Any

from mediasrv.transport.udp import Address, DataSink

log = logging.getLogger(__name__)

_ids = itertools.count(1)


class _Connection(asyncio.Protocol):
    def __init__(self, owner: TcpListener, inbound: bool) -> None:
        self.owner = owner
        self.inbound = inbound
        self.id = next(_ids)
        self.transport: asyncio.Transport | None = None
        self.peer: Address = ("", 0)
        self.local: Address = ("", 0)
        self.opened = self.last_rx = 0.0
        self.received = 0  # bytes
        self.aliases: set[Address] = set()  # addresses this connection stands for (RFC 5923)

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        self.peer = transport.get_extra_info("peername")[:2]
        self.local = transport.get_extra_info("sockname")[:2]
        self.opened = self.last_rx = asyncio.get_running_loop().time()
        if self.inbound and not self.owner.accept(self.peer[0]):
            transport.abort()
            return
        self.owner.connections[self.id] = self
        self.owner.per_source[self.peer[0]] += 1

    def data_received(self, data: bytes) -> None:
        self.last_rx = asyncio.get_running_loop().time()
        self.received += len(data)
        self.owner.on_data(data, self.peer, self.owner.transport, self.id, self.local)

    def connection_lost(self, exc: Exception | None) -> None:
        if self.owner.connections.pop(self.id, None) is None:
            return
        count = self.owner.per_source
        count[self.peer[0]] -= 1
        if count[self.peer[0]] <= 0:
            del count[self.peer[0]]
        for address in self.aliases:
            if self.owner.aliases.get(address) == self.id:
                del self.owner.aliases[address]
        self.owner.on_closed(self.id)


def same_ip(host: str, address: str) -> bool:
    """`host` is an IP literal naming the same address as `address`."""
    try:
        return ipaddress.ip_address(host) == ipaddress.ip_address(address)
    except ValueError:
        return False


class TcpListener:
    transport = "tcp"

    def __init__(self, on_data: DataSink, on_closed: Callable[[int], None], *,
                 refuse: Callable[[str], bool] = lambda _host: False,
                 max_per_source: int = 0) -> None:
        self.on_data = on_data
        self.on_closed = on_closed
        self.refuse = refuse
        self.max_per_source = max_per_source
        self.connections: dict[int, _Connection] = {}
        self.per_source: Counter[str] = Counter()
        self.refused: Counter[str] = Counter()  # reason -> connections closed at accept
        self.aliases: dict[Address, int] = {}  # (host, port) -> connection reused for it
        self.aliases_refused = 0
        self._server: asyncio.base_events.Server | None = None

    def accept(self, host: str) -> bool:
        """May a new inbound connection from `host` stay open?"""
        if self.refuse(host):
            self.refused["banned"] += 1
            return False
        if self.max_per_source and self.per_source[host] >= self.max_per_source:
            self.refused["too many connections"] += 1
            log.warning("mediasrv: refused %s connection from %s: %d already open",
                        self.transport, host, self.per_source[host])
            return False
        return True

    def _server_options(self) -> dict[str, Any]:
        return {}

    def _client_options(self, dest: Address) -> dict[str, Any]:
        return {}

    async def listen(self, host: str, port: int) -> None:
        loop = asyncio.get_running_loop()
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        self._server = await loop.create_server(lambda: _Connection(self, True), host, port,
                                                family=family, reuse_address=True,
                                                **self._server_options())

    def peer_of(self, conn_id: int) -> Address | None:
        conn = self.connections.get(conn_id)
        return conn.peer if conn else None

    def find(self, peer: Address) -> int | None:
        """An open connection to `peer`: one from or to that address, else one aliased to it."""
        found = next((c.id for c in self.connections.values() if c.peer == peer), None)
        return found if found is not None else self.aliases.get((peer[0].lower(), peer[1]))

    def alias(self, conn_id: int, host: str, port: int) -> bool:
        """Reuse connection `conn_id` for requests to `host`:`port` if it may speak for it."""
        conn = self.connections.get(conn_id)
        if conn is None:
            return False
        host = host.lower()
        if not self.may_alias(conn, host):
            self.aliases_refused += 1
            log.info("%s connection from %s may not stand for %s:%d (no alias)",
                     self.transport, conn.peer[0], host, port)
            return False
        self.aliases[(host, port)] = conn_id
        conn.aliases.add((host, port))
        return True

    def may_alias(self, conn: _Connection, host: str) -> bool:
        """TCP: only the connection's own source address (nothing else proves who it is)."""
        return same_ip(host, conn.peer[0])

    async def connect(self, dest: Address) -> int:
        loop = asyncio.get_running_loop()
        _, conn = await loop.create_connection(lambda: _Connection(self, False), dest[0],
                                               dest[1], **self._client_options(dest))
        return conn.id

    def send(self, conn_id: int, data: bytes) -> bool:
        conn = self.connections.get(conn_id)
        if conn is None or conn.transport is None or conn.transport.is_closing():
            return False
        conn.transport.write(data)
        return True

    def close_connection(self, conn_id: int, abort: bool = False) -> None:
        conn = self.connections.get(conn_id)
        if conn and conn.transport:
            if abort:
                conn.transport.abort()
            else:
                conn.transport.close()

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
        for conn in list(self.connections.values()):
            if conn.transport:
                conn.transport.abort()
        if self._server is not None:
            await self._server.wait_closed()
