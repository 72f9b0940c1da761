"""The reference relay for the engine benchmark: a plain asyncio UDP forwarder.

How this works: an event loop in a thread of its own holds two UDP endpoints per call on
127.0.0.1; a datagram that arrives on one leg is sent unchanged out of the other leg to
that leg's remote (the load generator). It does less than the engine (no header rewrite,
no source check, no DTMF detection): it is what "a plain asyncio forwarder" means when
DESIGN.md sizes the media path, measured here on the same machine in the same run.

Its cost depends on glibc's malloc: asyncio reads each datagram with recvfrom(256 KiB), and
while the mmap threshold is at its default (128 KiB) every read maps, shrinks and unmaps a
buffer, each unmap a TLB shootdown on the other CPU: about 300 calls per core here, which
is DESIGN.md's figure. Once the process has freed a larger block, glibc raises the
threshold and the same code runs about 4 times faster. `warm=True` fixes the threshold at
1 MiB (the fast case, the stricter reference), `warm=False` at the default.
"""

from __future__ import annotations

import asyncio
import ctypes
import threading
from typing import Any

M_MMAP_THRESHOLD = -3            # mallopt parameter (malloc.h); a fixed value stops glibc's
                                 # dynamic adjustment


class _Leg(asyncio.DatagramProtocol):
    def __init__(self, relay: AsyncioRelay, remote: tuple[str, int]) -> None:
        self.relay = relay
        self.remote = remote
        self.transport: asyncio.DatagramTransport | None = None
        self.peer: _Leg | None = None

    def connection_made(self, transport: Any) -> None:
        self.transport = transport

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        peer = self.peer
        if peer is not None and peer.transport is not None:
            peer.transport.sendto(data, peer.remote)
            self.relay.sent += 1


class AsyncioRelay:
    """`calls` bridged pairs of asyncio UDP endpoints; a context manager that owns the loop."""

    def __init__(self, calls: int, remote_a: int, remote_b: int, warm: bool = True) -> None:
        ctypes.CDLL(None).mallopt(M_MMAP_THRESHOLD, (1 << 20) if warm else (128 << 10))
        self.calls = calls
        self.remotes = (("127.0.0.1", remote_a), ("127.0.0.1", remote_b))
        self.sent = 0
        self.ports: list[tuple[int, int]] = []
        self._legs: list[_Leg] = []
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="asyncio-relay")

    @property
    def ident(self) -> int:
        assert self._thread.ident is not None
        return self._thread.ident

    @property
    def native_id(self) -> int:
        assert self._thread.native_id is not None
        return self._thread.native_id

    def __enter__(self) -> AsyncioRelay:
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self._open(), self._loop).result()
        return self

    def __exit__(self, *exc: object) -> None:
        asyncio.run_coroutine_threadsafe(self._close(), self._loop).result()
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join()
        self._loop.close()

    async def _open(self) -> None:
        loop = asyncio.get_running_loop()
        for _ in range(self.calls):
            a, b = _Leg(self, self.remotes[0]), _Leg(self, self.remotes[1])
            a.peer, b.peer = b, a
            for leg in (a, b):
                await loop.create_datagram_endpoint(lambda leg=leg: leg,
                                                    local_addr=("127.0.0.1", 0))
            self._legs += [a, b]
            self.ports.append((_port(a), _port(b)))

    async def _close(self) -> None:
        for leg in self._legs:
            if leg.transport is not None:
                leg.transport.close()
        await asyncio.sleep(0)


def _port(leg: _Leg) -> int:
    assert leg.transport is not None
    return int(leg.transport.get_extra_info("sockname")[1])
