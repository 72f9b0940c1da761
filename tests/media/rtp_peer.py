"""A tiny RTP peer on a real UDP socket, and the engine fixture, for the engine tests.

RtpPeer builds packets byte by byte (RFC 3550 §5.1 fixed header, so tests send exactly
what they mean, malformed ones included) and parses what the engine sends back.
`engine_factory` starts MediaEngines on port windows of their own (`tests.parallel`) and, on
exit, checks that nothing leaked: no open stream, every port bindable again, the media and
writer threads gone.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import struct
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from mediasrv.media.engine import MediaEngine
from mediasrv.media.events import MediaEvent
from tests.parallel import engine_ports


@dataclass(frozen=True)
class RtpPacket:
    """One received RTP packet (fixed header only; the engine never sends CSRC/extension)."""

    marker: bool
    pt: int
    seq: int
    ts: int
    ssrc: int
    payload: bytes
    raw: bytes


def build(payload: bytes, *, pt: int = 0, seq: int = 0, ts: int = 0, ssrc: int = 0x1234,
          marker: bool = False) -> bytes:
    """An RTP packet with a 12-byte header."""
    return struct.pack("!BBHII", 0x80, (0x80 if marker else 0) | pt, seq & 0xFFFF,
                       ts & 0xFFFFFFFF, ssrc) + payload


def parse(data: bytes) -> RtpPacket:
    b0, b1, seq, ts, ssrc = struct.unpack("!BBHII", data[:12])
    assert b0 == 0x80, f"engine sent V/P/X/CC byte {b0:#x}"
    return RtpPacket(bool(b1 & 0x80), b1 & 0x7F, seq, ts, ssrc, data[12:], data)


class RtpPeer:
    """A UDP socket on 127.0.0.1 that sends and receives RTP."""

    def __init__(self, host: str = "127.0.0.1") -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind((host, 0))
        self.host = host
        self.port: int = self.sock.getsockname()[1]
        self.seq = 1000
        self.ts = 50000
        self.ssrc = 0xA0A0A0A0

    def send_raw(self, port: int, data: bytes) -> None:
        self.sock.sendto(data, (self.host, port))

    def send(self, port: int, payload: bytes, *, pt: int = 0, marker: bool = False,
             ssrc: int | None = None) -> bytes:
        """Send the next packet of this peer's stream (seq +1, ts +len(payload))."""
        pkt = build(payload, pt=pt, seq=self.seq, ts=self.ts,
                    ssrc=self.ssrc if ssrc is None else ssrc, marker=marker)
        self.send_raw(port, pkt)
        self.seq += 1
        self.ts += len(payload)
        return pkt

    def send_raw_event(self, port: int, pt: int, ts: int, payload: bytes, *,
                       marker: bool = False) -> bytes:
        """Send one packet with an explicit timestamp (RFC 4733 events keep theirs)."""
        pkt = build(payload, pt=pt, seq=self.seq, ts=ts, ssrc=self.ssrc, marker=marker)
        self.send_raw(port, pkt)
        self.seq += 1
        return pkt

    def recv(self, timeout: float = 1.0) -> RtpPacket | None:
        self.sock.settimeout(timeout)
        try:
            data = self.sock.recv(4096)
        except TimeoutError:
            return None
        return parse(data)

    def recv_for(self, seconds: float) -> list[RtpPacket]:
        """Everything that arrives within the next `seconds`."""
        out: list[RtpPacket] = []
        end = time.monotonic() + seconds
        while (left := end - time.monotonic()) > 0:
            pkt = self.recv(left)
            if pkt is not None:
                out.append(pkt)
        return out

    def drain(self) -> None:
        self.sock.setblocking(False)
        try:
            while True:
                self.sock.recv(4096)
        except BlockingIOError:
            pass
        finally:
            self.sock.setblocking(True)

    def close(self) -> None:
        self.sock.close()


def goertzel_power(x: np.ndarray, freq: float, rate: int = 8000) -> float:
    """Relative power of one frequency in x (normalised by the signal's total power)."""
    n = len(x)
    k = np.exp(-2j * np.pi * freq * np.arange(n) / rate)
    total = float(np.sum(x.astype(np.float64) ** 2)) + 1e-9
    return float(abs(np.dot(x, k)) ** 2 / (n * total / 2))


@dataclass
class EngineUnderTest:
    """A started engine, the events it delivered, and its port range."""

    engine: MediaEngine
    port_min: int
    port_max: int
    events: list[MediaEvent] = field(default_factory=list)

    def of(self, kind: type) -> list[Any]:
        return [e for e in self.events if isinstance(e, kind)]

    async def wait_for(self, kind: type, timeout: float = 2.0, count: int = 1) -> list[Any]:
        """Let the loop pump events until `count` of `kind` arrived; returns them all."""
        loop = asyncio.get_running_loop()
        end = loop.time() + timeout
        while loop.time() < end:
            if len(self.of(kind)) >= count:
                return self.of(kind)
            await asyncio.sleep(0.01)
        raise AssertionError(f"no {count} {kind.__name__} within {timeout} s: {self.events}")


def assert_ports_free(lo: int, hi: int) -> None:
    for port in range(lo, hi + 1):
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.bind(("127.0.0.1", port))


@contextlib.asynccontextmanager
async def engine_factory(test_name: str) -> AsyncIterator[Callable[..., EngineUnderTest]]:
    """make(ports=20, **MediaEngine kwargs) -> a started EngineUnderTest; leak checks on exit.

    Use it from a fixture: `async with engine_factory(request.node.name) as make: yield make`.
    """
    made: list[EngineUnderTest] = []

    def make(ports: int = 20, **kwargs: Any) -> EngineUnderTest:
        lo, hi = engine_ports(ports)  # this xdist worker's, below the ephemeral ports
        eut = EngineUnderTest(MediaEngine("127.0.0.1", lo, hi, **kwargs), lo, hi)
        eut.engine.start(asyncio.get_running_loop(), eut.events.append)
        made.append(eut)
        return eut

    yield make
    for eut in made:
        leaked = eut.engine.open_stream_count()
        eut.engine.stop()
        assert leaked == 0, f"{test_name}: {leaked} streams left open"
        assert not eut.engine.thread_alive(), f"{test_name}: the media thread outlived stop()"
        assert_ports_free(eut.port_min, eut.port_max)


def rtp_valid(data: bytes) -> bool:
    """Reference for the engine's RTP validity checks (RFC 3550 §5.1, A.1; RFC 5761 §4)."""
    if len(data) < 12 or data[0] >> 6 != 2:
        return False
    off = 12 + 4 * (data[0] & 0x0F)
    if off > len(data):
        return False
    if data[0] & 0x10:
        if off + 4 > len(data):
            return False
        off += 4 + 4 * int.from_bytes(data[off + 2:off + 4], "big")
        if off > len(data):
            return False
    if data[0] & 0x20 and (data[-1] == 0 or off + data[-1] > len(data)):
        return False
    return not 72 <= data[1] & 0x7F <= 76


def wire(eng: MediaEngine, peer: RtpPeer, codec: str = "PCMU", event_pt: int | None = 101) -> int:
    """Open a stream whose remote is peer; returns the stream id."""
    sid = eng.open_stream()
    pt = 0 if codec == "PCMU" else 8
    eng.set_remote(sid, "127.0.0.1", peer.port, codec=codec, pt=pt, event_pt=event_pt)
    return sid
