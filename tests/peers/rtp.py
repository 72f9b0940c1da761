"""RTP for the test phone: send an identity tone, send DTMF, hear what comes back.

How this works
--------------
* One UDP socket per call (even port, RFC 3550 §11). A sender task ticks every ``ptime``
  (20 ms unless the phone is made with another) on the loop clock (drift-free: it sleeps to
  ``start + k·ptime``) and sends one packet per tick with seq +1 and the timestamp advanced
  by ptime on the codec's RTP clock (RFC 3550 §5.1; 8000 Hz for G.711 and G.722, 48000 for
  Opus: codecs.py), one SSRC. Audio is made at the codec's own rate (16 kHz for G.722/Opus).
* A tick sends, in order of priority: a pending RFC 4733 event packet, an in-band DTMF frame,
  or the identity tone. RFC 4733 §2.5: every packet of one event carries the timestamp of
  the event's start, the first has the marker bit, the duration grows by 160 per packet, and
  the end packet (E bit) is sent three times, each with a new sequence number but the same
  timestamp and duration (§2.5.1.4).
  The audio timestamp keeps running during the event, so audio resumes in step.
* Whether we send follows the negotiated direction (RFC 3264 §6.1): only when our side is
  ``sendrecv``/``sendonly`` and the peer's is ``sendrecv``/``recvonly``.
* Received audio is decoded (to 8 kHz) into a ``Hearing``, and each packet's timestamp and
  duration go to ``timeline`` (a real phone plays by timestamp: a stream whose timestamps
  do not advance by the audio each packet holds plays garbled); received RFC 4733 events
  are reported once per event (dedupe on timestamp) when their end packet arrives.
"""

from __future__ import annotations

import asyncio
import secrets
import socket
import struct
from dataclasses import dataclass, field

import numpy as np

from tests.peers import audio, codecs

DTMF_EVENT = {k: i for i, k in enumerate("0123456789*#")} | {"A": 12, "B": 13, "C": 14, "D": 15}
EVENT_DTMF = {v: k for k, v in DTMF_EVENT.items()}
SENDS = {"sendrecv", "sendonly"}
RECEIVES = {"sendrecv", "recvonly"}


def bind_even_port(host: str) -> socket.socket:
    """A UDP socket on an even ephemeral port (RFC 3550 §11)."""
    for _ in range(50):
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        sock.bind((host, 0))
        if sock.getsockname()[1] % 2 == 0:
            sock.setblocking(False)
            return sock
        sock.close()
    raise OSError("no even UDP port found")


@dataclass
class RtpStats:
    """Counters of one RTP session."""

    sent: int = 0
    received: int = 0
    payload_types: set[int] = field(default_factory=set)
    ssrcs: set[int] = field(default_factory=set)
    bad: int = 0


def rtp_packet(pt: int, seq: int, ts: int, ssrc: int, payload: bytes,
               marker: bool = False) -> bytes:
    """An RTP packet (RFC 3550 §5.1), no CSRC, no extension."""
    return struct.pack("!BBHII", 0x80, (0x80 if marker else 0) | pt, seq & 0xFFFF,
                       ts & 0xFFFFFFFF, ssrc) + payload


def parse_rtp(data: bytes) -> tuple[int, int, int, int, bool, bytes]:
    """(pt, seq, ts, ssrc, marker, payload) of an RTP packet; ValueError if not RTP v2."""
    if len(data) < 12 or data[0] >> 6 != 2:
        raise ValueError("not RTP")
    b0, b1, seq, ts, ssrc = struct.unpack("!BBHII", data[:12])
    start = 12 + 4 * (b0 & 0x0F)
    if b0 & 0x10:  # header extension: 4-byte header + length words
        start += 4 + 4 * struct.unpack("!H", data[start + 2 : start + 4])[0]
    end = len(data) - (data[-1] if b0 & 0x20 else 0)
    return b1 & 0x7F, seq, ts, ssrc, bool(b1 & 0x80), data[start:end]


def dtmf_payload(event: int, end: bool, volume: int, duration: int) -> bytes:
    """An RFC 4733 §2.3 named-event payload."""
    return struct.pack("!BBH", event, (0x80 if end else 0) | (volume & 0x3F), duration)


class RtpSession(asyncio.DatagramProtocol):
    """One call's audio: sends ``tone`` frames, records into ``hearing``."""

    def __init__(self, tone_hz: tuple[float, ...], hearing: audio.Hearing, host: str = "127.0.0.1"):
        self.host = host
        self.hearing = hearing
        self.source = audio.ToneSource(tone_hz)
        self.stats = RtpStats()
        self.dtmf_received: list[str] = []
        # (timestamp, duration on the RTP clock) of each audio packet received, in order
        self.timeline: list[tuple[int, int]] = []
        self.remote: tuple[str, int] | None = None
        self.pt = 0
        self.codec = codecs.make("PCMU")
        self.ptime = 20                                # ms per packet
        self.dtmf_pt: int | None = None
        self.local_direction = "sendrecv"
        self.remote_direction = "sendrecv"
        self.sending = False  # the call is answered: media may flow
        self.muted = False
        self.ssrc = secrets.randbits(32)
        self.seq = secrets.randbits(16)
        self.ts = secrets.randbits(32)
        self._events: list[tuple[bytes, bool]] = []  # queued (payload, marker) for RFC 4733
        self._event_ts = 0
        self._inband: list[audio.ToneSource | None] = []   # one entry per packet
        self._seen_events: set[tuple[int, int]] = set()
        self._transport: asyncio.DatagramTransport | None = None
        self._task: asyncio.Task[None] | None = None

    async def open(self) -> int:
        """Bind the socket and start the 20 ms clock; returns the local port."""
        loop = asyncio.get_running_loop()
        sock = bind_even_port(self.host)
        self._transport, _ = await loop.create_datagram_endpoint(lambda: self, sock=sock)
        self._task = asyncio.create_task(self._run())
        return self.port

    @property
    def port(self) -> int:
        """Local RTP port."""
        assert self._transport is not None
        return self._transport.get_extra_info("sockname")[1]

    def set_codec(self, name: str, pt: int) -> None:
        """Send and decode ``name`` at payload type ``pt`` from now on."""
        self.pt = pt
        if name != self.codec.name:
            self.codec.close()
            self.codec = codecs.make(name)

    @property
    def samples(self) -> int:
        """Samples of audio per packet at the codec's rate."""
        return self.codec.rate * self.ptime // 1000

    def close(self) -> None:
        """Stop sending and release the socket."""
        self.codec.close()
        if self._task:
            self._task.cancel()
        if self._transport:
            self._transport.close()
        self._task = self._transport = None

    @property
    def will_send(self) -> bool:
        """True when the negotiated directions let us send now."""
        return (self.sending and not self.muted and self.remote is not None
                and self.local_direction in SENDS and self.remote_direction in RECEIVES)

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        due = loop.time()
        while True:
            due += self.ptime / 1000
            await asyncio.sleep(max(0.0, due - loop.time()))
            self._tick()

    def _tick(self) -> None:
        self.ts = (self.ts + self.codec.clock * self.ptime // 1000) & 0xFFFFFFFF
        if not self.will_send:
            self._events.clear()
            self._inband.clear()
            return
        if self._events and self.dtmf_pt is not None:
            payload, marker = self._events.pop(0)
            self._send(self.dtmf_pt, self._event_ts, payload, marker)
            return
        source = self._inband.pop(0) if self._inband else self.source
        if source is None:
            pcm = np.zeros(self.samples, np.int16)
        else:
            pcm = source.frame(self.samples, self.codec.rate)
        self._send(self.pt, self.ts, self.codec.encode(pcm))

    def _send(self, pt: int, ts: int, payload: bytes, marker: bool = False) -> None:
        self.seq = (self.seq + 1) & 0xFFFF
        assert self._transport is not None and self.remote is not None
        packet = rtp_packet(pt, self.seq, ts, self.ssrc, payload, marker)
        self._transport.sendto(packet, self.remote)
        self.stats.sent += 1

    def queue_rfc4733(self, digit: str, duration: float = 0.1, volume: int = 10) -> float:
        """Queue one RFC 4733 event; returns the seconds it will take to send."""
        event = DTMF_EVENT[digit.upper()]
        steps = max(1, round(duration * 1000 / self.ptime))
        step = 8 * self.ptime                              # telephone-event/8000 units
        # the tick that sends packet 1, on the audio's clock (same SSRC and timestamp space)
        self._event_ts = (self.ts + self.codec.clock * self.ptime // 1000) & 0xFFFFFFFF
        packets = [(dtmf_payload(event, False, volume, step * (i + 1)), i == 0)
                   for i in range(steps - 1)]
        end = dtmf_payload(event, True, volume, step * steps)
        packets += [(end, steps == 1)] + [(end, False)] * 2
        self._events.extend(packets)
        return self.ptime / 1000 * len(packets)

    def queue_inband(self, digit: str, duration: float = 0.1, gap: float = 0.06) -> float:
        """Queue an in-band DTMF tone (replacing the identity tone) and a silent gap."""
        tone = audio.ToneSource(audio.dtmf_freqs(digit), amplitude=6000)
        packets: list[audio.ToneSource | None] = [tone] * max(1, round(duration * 1000
                                                                     / self.ptime))
        packets += [None] * max(1, round(gap * 1000 / self.ptime))
        self._inband.extend(packets)
        return self.ptime / 1000 * len(packets)

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        """Decode audio into the hearing; collect DTMF events."""
        try:
            pt, _seq, ts, ssrc, _marker, payload = parse_rtp(data)
        except (ValueError, struct.error):
            self.stats.bad += 1
            return
        self.stats.received += 1
        self.stats.payload_types.add(pt)
        self.stats.ssrcs.add(ssrc)
        if pt == self.pt and pt != self.dtmf_pt:
            pcm = self.codec.decode(payload)
            self.timeline.append((ts, len(pcm) * self.codec.clock // audio.RATE))
            self.hearing.feed(pcm)
        elif pt in (0, 8):
            self.hearing.feed(audio.decode(payload, pt))
        elif pt == self.dtmf_pt and len(payload) >= 4 and payload[1] & 0x80:
            if (ssrc, ts) not in self._seen_events:
                self._seen_events.add((ssrc, ts))
                self.dtmf_received.append(EVENT_DTMF.get(payload[0], "?"))
