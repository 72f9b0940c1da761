"""The console's one RTP stream: sound card frames out, the far end's G.711 frames in.

How this works (RFC 3550 §5.1 header, G.711 per RFC 3551, 20 ms frames): a 20 ms timer on
the loop sends the sound card's next captured frame (silence when the card is behind);
received packets of the negotiated payload type are decoded to the card, telephone-events
and anything else are ignored. This is one phone's packet rate (50 packets/s each way), which
is why it runs in Python rather than in the media engine.
"""

from __future__ import annotations

import asyncio
import queue
import secrets
import struct
from typing import cast

import numpy as np

from mediasrv import _media
from mediasrv.console.audio import FRAME, SAMPLE_RATE, SILENCE, SoundCard

_ENCODE = {"PCMU": _media.ulaw_encode, "PCMA": _media.alaw_encode}
_DECODE = {"PCMU": _media.ulaw_decode, "PCMA": _media.alaw_decode}


class RtpPeer(asyncio.DatagramProtocol):
    """One G.711 RTP stream between the sound card and the far end (the server's port)."""

    def __init__(self, card: SoundCard) -> None:
        self.card = card
        self.transport: asyncio.DatagramTransport | None = None
        self.remote: tuple[str, int] | None = None
        self.codec, self.pt = "PCMU", 0
        self.ssrc = secrets.randbits(32)
        self.seq, self.ts = secrets.randbits(16), secrets.randbits(32)
        self.received = 0
        self._clock: asyncio.Task | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.DatagramTransport, transport)

    @property
    def port(self) -> int:
        assert self.transport is not None
        return int(self.transport.get_extra_info("sockname")[1])

    def begin(self, host: str, port: int, codec: str, pt: int) -> None:
        """Starts sending to host:port (the answer's or offer's connection address)."""
        self.remote, self.codec, self.pt = (host, port), codec, pt
        self.card.flush()
        if self._clock is None:
            self._clock = asyncio.get_running_loop().create_task(self._send_every_frame())

    def end(self) -> None:
        """Stops sending (the call ended); the socket stays for the next call."""
        if self._clock is not None:
            self._clock.cancel()
            self._clock = None
        self.remote = None

    def close(self) -> None:
        """Stops sending and closes the socket."""
        self.end()
        if self.transport is not None:
            self.transport.close()

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        """Audio of the negotiated payload type goes to the card; the rest is ignored."""
        if self.remote is None or len(data) < 12 or data[0] >> 6 != 2:
            return
        if data[1] & 0x7F != self.pt:
            return  # telephone-event, comfort noise, a stray stream
        start = 12 + 4 * (data[0] & 0x0F)
        if data[0] & 0x10 and len(data) >= start + 4:  # header extension (RFC 3550 5.3.1)
            start += 4 + 4 * struct.unpack_from("!H", data, start + 2)[0]
        payload = data[start:]
        if payload:
            self.received += 1
            self.card.play(_DECODE[self.codec](payload).tobytes())

    async def _send_every_frame(self) -> None:
        loop = asyncio.get_running_loop()
        due = loop.time()
        while True:
            due += FRAME / SAMPLE_RATE
            await asyncio.sleep(max(0.0, due - loop.time()))
            self._send(self._next_frame())

    def _next_frame(self) -> bytes:
        try:
            return self.card.captured.get_nowait()
        except queue.Empty:  # the card is behind
            return SILENCE

    def _send(self, pcm: bytes) -> None:
        if self.transport is None or self.remote is None:
            return
        payload = _ENCODE[self.codec](np.frombuffer(pcm, dtype=np.int16))
        header = struct.pack("!BBHII", 0x80, self.pt, self.seq, self.ts, self.ssrc)
        self.transport.sendto(header + payload, self.remote)
        self.seq, self.ts = (self.seq + 1) & 0xFFFF, (self.ts + FRAME) & 0xFFFFFFFF
