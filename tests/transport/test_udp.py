"""The UDP listener: bursts are read in batches and handed over in order; sends keep order."""

from __future__ import annotations

import asyncio
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
