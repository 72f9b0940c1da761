"""The UDP listener: bursts are read in batches and handed over in order; sends keep order."""

from __future__ import annotations

import asyncio
import os
import socket

from mediasrv.transport import udp
from mediasrv.transport.udp import open_udp


async def test_a_burst_is_handed_over_whole_and_in_order() -> None:
    got: list[tuple[bytes, tuple[str, int], str]] = []
    listener = await open_udp("127.0.0.1", 0, lambda d, src, t, c, loc: got.append((d, src, t)))
    sender = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sender.bind(("127.0.0.1", 0))
    try:
        burst = [f"datagram {i}".encode() for i in range(3 * udp.BATCH + 5)]
        for data in burst:  # all waiting in the socket before the loop looks: several batches
            sender.sendto(data, listener.local)
        for _ in range(200):
            if len(got) == len(burst):
                break
            await asyncio.sleep(0.01)
        assert [d for d, _src, _t in got] == burst
        assert {(src, t) for _d, src, t in got} == {(sender.getsockname(), "udp")}
    finally:
        listener.close()
        sender.close()


async def test_sends_arrive_in_order_and_close_stops_both_ways() -> None:
    got: list[bytes] = []
    listener = await open_udp("127.0.0.1", 0, lambda d, *_: got.append(d))
    peer = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    peer.bind(("127.0.0.1", 0))
    peer.settimeout(2)
    try:
        for i in range(20):
            listener.send(f"out {i}".encode(), peer.getsockname())
        assert [peer.recv(100) for _ in range(20)] == [f"out {i}".encode() for i in range(20)]
    finally:
        listener.close()
        peer.close()
    listener.send(b"after close", ("127.0.0.1", 9))  # ignored, as on a closed transport
    assert got == []


def _kernel_cap() -> int:
    """What SO_RCVBUF alone may grant (net.core.rmem_max); root may go past it (FORCE)."""
    with open("/proc/sys/net/core/rmem_max") as f:
        return int(f.read())


async def test_the_receive_buffer_asked_for_is_granted_or_capped_by_the_kernel() -> None:
    wanted = 2 * 1024 * 1024
    default = await open_udp("127.0.0.1", 0, lambda *_: None)
    asked = await open_udp("127.0.0.1", 0, lambda *_: None, receive_buffer=wanted)
    try:
        kernel = asked._sock.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF)  # type: ignore[union-attr]
        assert asked.receive_buffer == kernel // 2  # what the listener reports is the kernel's
        floor = wanted if os.geteuid() == 0 else min(wanted, _kernel_cap())
        assert asked.receive_buffer >= floor
        assert asked.receive_buffer > default.receive_buffer
    finally:
        default.close()
        asked.close()


async def test_datagrams_lost_to_a_full_buffer_are_counted() -> None:
    got: list[bytes] = []
    listener = await open_udp("127.0.0.1", 0, lambda d, *_: got.append(d), receive_buffer=4096)
    sender = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        assert listener.drops() == 0
        for i in range(200):  # the loop does not turn: the buffer fills and the kernel drops
            sender.sendto(b"x" * 500 + str(i).encode(), listener.local)
        lost = listener.drops()
        assert lost is not None and lost > 0
        for _ in range(100):
            await asyncio.sleep(0.01)
            if len(got) + lost == 200:
                break
        assert len(got) + lost == 200 and len(got) > 0  # each datagram read or counted lost
    finally:
        listener.close()
        sender.close()
    assert listener.drops() is None
