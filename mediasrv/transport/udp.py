"""UDP listener: datagrams in, datagrams out; nothing else.

How this works: one `UdpListener` per `udp:` entry of `sip.listen`, on a non-blocking socket
watched by the loop (`add_reader`). Each time the socket is readable, up to `BATCH` datagrams
waiting in it are read and handed one by one to `on_data(data, source, "udp", None, local)`:
under load one turn of the loop serves a burst instead of one datagram per turn (asyncio's
datagram transport reads one). `send(data, dest)` writes one at once; when the socket buffer
is full the rest wait, in order, until the loop says it is writable again. Socket errors
(ICMP port unreachable for an earlier send) are logged at debug level and dropped, as
asyncio's transport would hand them to `error_received`. It knows no SIP and no call logic
(RFC 3261 §18 framing for UDP is one message per datagram).
"""

from __future__ import annotations

import asyncio
import logging
import socket
from collections import deque
from collections.abc import Callable

log = logging.getLogger(__name__)

Address = tuple[str, int]
DataSink = Callable[[bytes, Address, str, "int | None", Address], None]

BATCH = 32                  # datagrams read per readiness event at most (then the loop turns)
MAX_DATAGRAM = 256 * 1024   # what asyncio's datagram transport reads at once


class UdpListener:
    def __init__(self, on_data: DataSink) -> None:
        self._on_data = on_data
        self._loop: asyncio.AbstractEventLoop | None = None
        self._sock: socket.socket | None = None
        self._backlog: deque[tuple[bytes, Address]] = deque()
        self.local: Address = ("", 0)

    def attach(self, loop: asyncio.AbstractEventLoop, sock: socket.socket) -> None:
        """Serve `sock` (bound, non-blocking) on `loop`."""
        self._loop, self._sock = loop, sock
        self.local = sock.getsockname()[:2]
        loop.add_reader(sock.fileno(), self._read_ready)

    def _read_ready(self) -> None:
        sock, on_data, local = self._sock, self._on_data, self.local
        if sock is None:
            return
        for _ in range(BATCH):
            try:
                data, addr = sock.recvfrom(MAX_DATAGRAM)
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:
                self.error_received(exc)
                return
            on_data(data, (addr[0], addr[1]), "udp", None, local)

    def error_received(self, exc: Exception) -> None:
        # ICMP errors (port unreachable) for an earlier send: nothing to undo here.
        log.debug("udp %s: %s", self.local, exc)

    def send(self, data: bytes, dest: Address) -> None:
        sock = self._sock
        if sock is None:
            return
        if not self._backlog:
            try:
                sock.sendto(data, dest)
                return
            except (BlockingIOError, InterruptedError):
                assert self._loop is not None
                self._loop.add_writer(sock.fileno(), self._write_ready)
            except OSError as exc:
                self.error_received(exc)
                return
        self._backlog.append((data, dest))

    def _write_ready(self) -> None:
        sock, backlog = self._sock, self._backlog
        while sock is not None and backlog:
            data, dest = backlog[0]
            try:
                sock.sendto(data, dest)
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:
                self.error_received(exc)
            backlog.popleft()
        if sock is not None and self._loop is not None:
            self._loop.remove_writer(sock.fileno())

    def close(self) -> None:
        sock, self._sock = self._sock, None
        if sock is None:
            return
        if self._loop is not None and not self._loop.is_closed():
            self._loop.remove_reader(sock.fileno())
            self._loop.remove_writer(sock.fileno())
        self._backlog.clear()
        sock.close()


async def open_udp(host: str, port: int, on_data: DataSink) -> UdpListener:
    """Binds host:port (IPv4 or IPv6); raises OSError when it cannot."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    infos = await asyncio.get_running_loop().getaddrinfo(host, port, family=family,
                                                         type=socket.SOCK_DGRAM)
    sock = socket.socket(family, socket.SOCK_DGRAM)
    try:
        sock.setblocking(False)
        sock.bind(infos[0][4])
    except OSError:
        sock.close()
        raise
    listener = UdpListener(on_data)
    listener.attach(asyncio.get_running_loop(), sock)
    return listener
