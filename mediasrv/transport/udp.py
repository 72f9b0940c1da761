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

The socket's receive buffer is what carries the server through a pause of its loop (a
garbage collection, a burst of work): at 500 calls/s about 4,000 datagrams arrive a second,
and the kernel's default buffer (208 KiB, ~90 SIP datagrams on loopback, where each costs
its ~2.3 KiB of kernel memory) overflowed in a 65 ms young-generation collection and lost
requests the phones then had to retransmit. `open_udp(..., receive_buffer=N)` asks for N
bytes (SO_RCVBUF, else SO_RCVBUFFORCE when the process may) and keeps what the kernel
granted in `receive_buffer`; `drops()` reads the kernel's count of datagrams this socket
lost to a full buffer (Linux /proc/net/udp, at scrape time only).
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
from collections import deque
from collections.abc import Callable

log = logging.getLogger(__name__)

Address = tuple[str, int]
DataSink = Callable[[bytes, Address, str, "int | None", Address], None]

BATCH = 32                  # datagrams read per readiness event at most (then the loop turns)
MAX_DATAGRAM = 256 * 1024   # what asyncio's datagram transport reads at once
SO_RCVBUFFORCE = getattr(socket, "SO_RCVBUFFORCE", 33)  # Linux: past rmem_max with CAP_NET_ADMIN


class UdpListener:
    def __init__(self, on_data: DataSink) -> None:
        self._on_data = on_data
        self._loop: asyncio.AbstractEventLoop | None = None
        self._sock: socket.socket | None = None
        self._backlog: deque[tuple[bytes, Address]] = deque()
        self.local: Address = ("", 0)
        self.receive_buffer = 0  # bytes the kernel granted (its SO_RCVBUF figure halved)

    def attach(self, loop: asyncio.AbstractEventLoop, sock: socket.socket) -> None:
        """Serve `sock` (bound, non-blocking) on `loop`."""
        self._loop, self._sock = loop, sock
        self.local = sock.getsockname()[:2]
        self.receive_buffer = sock.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF) // 2
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

    def drops(self) -> int | None:
        """Datagrams the kernel dropped for this socket because its receive buffer was full
        (None: closed, or not Linux)."""
        sock = self._sock
        if sock is None:
            return None
        inode = str(os.fstat(sock.fileno()).st_ino)
        table = "/proc/net/udp6" if sock.family == socket.AF_INET6 else "/proc/net/udp"
        port = f":{self.local[1]:04X} "
        try:
            with open(table) as f:
                for line in f:
                    if port in line:
                        fields = line.split()
                        if fields[9] == inode:
                            return int(fields[-1])
        except (OSError, IndexError, ValueError):
            return None
        return None

    def close(self) -> None:
        sock, self._sock = self._sock, None
        if sock is None:
            return
        if self._loop is not None and not self._loop.is_closed():
            self._loop.remove_reader(sock.fileno())
            self._loop.remove_writer(sock.fileno())
        self._backlog.clear()
        sock.close()


def ask_receive_buffer(sock: socket.socket, size: int) -> None:
    """Asks for a receive buffer of `size` bytes: SO_RCVBUF (capped by net.core.rmem_max),
    then SO_RCVBUFFORCE when that was capped and the process has CAP_NET_ADMIN."""
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, size)
    if sock.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF) // 2 < size:
        try:
            sock.setsockopt(socket.SOL_SOCKET, SO_RCVBUFFORCE, size)
        except OSError:
            pass  # not permitted: the caller reads what was granted and says so


async def open_udp(host: str, port: int, on_data: DataSink,
                   receive_buffer: int = 0) -> UdpListener:
    """Binds host:port (IPv4 or IPv6) with a receive buffer of `receive_buffer` bytes asked
    for (0: the kernel's default); raises OSError when it cannot bind."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    infos = await asyncio.get_running_loop().getaddrinfo(host, port, family=family,
                                                         type=socket.SOCK_DGRAM)
    sock = socket.socket(family, socket.SOCK_DGRAM)
    try:
        sock.setblocking(False)
        if receive_buffer:
            ask_receive_buffer(sock, receive_buffer)
        sock.bind(infos[0][4])
    except OSError:
        sock.close()
        raise
    listener = UdpListener(on_data)
    listener.attach(asyncio.get_running_loop(), sock)
    return listener
