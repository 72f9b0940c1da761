"""Capture UDP on the loopback interface, to prove what actually went over the wire.

How this works: an AF_PACKET raw socket bound to ``lo`` (needs CAP_NET_RAW; without it the
test skips, and fails under ``CI=true``) read by a thread; every IPv4/UDP datagram whose
source or destination port is in ``ports`` is kept as a ``Datagram``. Loopback shows each
datagram twice (leaving and arriving); callers that count should dedupe or not care.
``audio_of`` decodes captured RTP payloads as G.711 so a test can ask whether a tone is in
clear on the wire; ``looks_encrypted`` is the SRTP check used by the SRTP tests.
"""

from __future__ import annotations

import socket
import struct
import threading
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from tests.peers import audio
from tests.peers.require import missing

ETH_P_ALL = 0x0003


@dataclass(frozen=True)
class Datagram:
    src_port: int
    dst_port: int
    payload: bytes


class LoopbackCapture:
    """``with LoopbackCapture(lambda port: ...) as cap:`` ... ``cap.datagrams``."""

    def __init__(self, wanted: Callable[[int], bool]) -> None:
        self.wanted = wanted
        self.datagrams: list[Datagram] = []
        self._lock = threading.Lock()
        try:
            self.sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ALL))
        except PermissionError:
            missing("capturing on lo needs CAP_NET_RAW (run the test as root)")
        self.sock.bind(("lo", 0))
        self.sock.settimeout(0.1)
        self._stop = False
        self._thread = threading.Thread(target=self._run, name="capture", daemon=True)

    def __enter__(self) -> LoopbackCapture:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop = True
        self._thread.join()
        self.sock.close()

    def _run(self) -> None:
        while not self._stop:
            try:
                frame = self.sock.recv(65535)
            except TimeoutError:
                continue
            found = _udp(frame[14:])                     # lo frames carry a 14-byte header
            if found is not None and (self.wanted(found.src_port) or self.wanted(found.dst_port)):
                with self._lock:
                    self.datagrams.append(found)

    def between(self, ports: set[int]) -> list[Datagram]:
        """Datagrams sent from or to one of ports."""
        with self._lock:
            return [d for d in self.datagrams if d.src_port in ports or d.dst_port in ports]


def _udp(ip: bytes) -> Datagram | None:
    if len(ip) < 28 or ip[0] >> 4 != 4 or ip[9] != socket.IPPROTO_UDP:
        return None
    ihl = (ip[0] & 0x0F) * 4
    src, dst, length = struct.unpack("!HHH", ip[ihl:ihl + 6])
    return Datagram(src, dst, ip[ihl + 8:ihl + length])


def rtp_packets(datagrams: list[Datagram]) -> list[bytes]:
    """The RTP-looking datagrams (version 2, not RTCP payload types 72-76)."""
    return [d.payload for d in datagrams if len(d.payload) >= 12 and d.payload[0] >> 6 == 2
            and not 72 <= d.payload[1] & 0x7F <= 76]


def audio_of(packets: list[bytes], payload_len: int = audio.FRAME) -> np.ndarray:
    """The payloads' first payload_len bytes decoded as PCMU/PCMA (by their PT), joined."""
    chunks = [audio.decode(p[12:12 + payload_len], p[1] & 0x7F) for p in packets
              if (p[1] & 0x7F) in (0, 8) and len(p) >= 12 + payload_len]
    return np.concatenate(chunks) if chunks else np.zeros(0, dtype=np.int16)


def tones_in_clear(packets: list[bytes], share: float = 0.5, frames: int = 3) -> set[str]:
    """Identity tones a listener on the wire hears from these packets, read as G.711: a tone
    counts when it holds over `share` of a frame's power in at least `frames` packets (a
    pure tone holds ~1; ciphertext read as G.711 is noise, ~2/160 at any one frequency)."""
    counts = dict.fromkeys(audio.TONE_HZ, 0)
    n = audio.FRAME
    basis = {name: np.exp(-2j * np.pi * hz * np.arange(n) / audio.RATE)
             for name, hz in audio.TONE_HZ.items()}
    for p in packets:
        pcm = audio_of([p]).astype(np.float64)
        total = float(np.sum(pcm ** 2))
        if len(pcm) < n or total <= 0:
            continue
        for name, k in basis.items():
            if abs(np.dot(pcm[:n], k)) ** 2 / (n * total / 2) > share:
                counts[name] += 1
    return {name for name, c in counts.items() if c >= frames}
