"""Load scenarios for the media engine, shared by the CI benchmark and the sweep script.

How this works: the engine's media thread is pinned to one CPU and the load generator
(bench/loadgen, sendmmsg/recvmmsg in C) to the other. We measure the media thread's own CPU
time (its pthread CPU clock) over the run, so capacity is a ratio measured in the same run:
units per core = units x wall time / engine CPU time (a unit is a two-party call, a
three-party conference or an MoH listener). Loss and forwarding delay come from the load
generator. Every scenario closes all its streams and stops the engine.
"""

from __future__ import annotations

import asyncio
import math
import os
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace

import loadgen
import numpy as np
from asyncio_relay import AsyncioRelay

from mediasrv import _media
from mediasrv.media.engine import MediaEngine

PORT_MIN = 40000                 # ports taken by others are skipped; SLACK leaves room for that
SLACK = 400
ENGINE_CPU, LOADGEN_CPU = 0, 1
SLOTS = 10                       # send sub-ticks per 20 ms: 2 ms between bursts


@dataclass
class LoadResult:
    """What one run measured; `per_core` = units carried x busy seconds / engine CPU seconds.

    `carried` is the load actually offered over `busy` seconds: for calls it comes from the
    packets the load generator managed to send (100 packets/s into the engine per call), so
    a load generator that falls behind on a busy machine cannot inflate the engine's figure.
    `seconds` is the whole measured wall time (sending plus the final drain).
    """

    units: int
    carried: float
    busy: float
    seconds: float
    engine_cpu: float
    sent: int
    expected: int
    received: int
    p50_us: float
    p99_us: float
    engine_out: int = 0        # packets the engine sent during the run (its own counters)

    @property
    def loss(self) -> float:
        return max(0.0, 1.0 - self.received / self.expected) if self.expected else 0.0

    @property
    def per_core(self) -> float:
        return self.carried * self.busy / max(self.engine_cpu, 1e-9)

    @property
    def load(self) -> float:
        """Fraction of one core the media thread used."""
        return self.engine_cpu / self.seconds


def _thread_cpu(ident: int) -> float:
    return time.clock_gettime(time.pthread_getcpuclockid(ident))


@contextmanager
def _engine(streams: int) -> Iterator[tuple[MediaEngine, list[int]]]:
    eng = MediaEngine("127.0.0.1", PORT_MIN, PORT_MIN + 2 * streams + SLACK, rtp_timeout=0)
    loop = asyncio.new_event_loop()
    eng.start(loop, lambda ev: None)
    ids = eng.media_thread_ids()
    assert ids is not None
    if len(os.sched_getaffinity(0)) > 1:
        os.sched_setaffinity(ids[1], {ENGINE_CPU})
    sids: list[int] = []
    try:
        yield eng, sids
    finally:
        for sid in sids:
            eng.close_stream(sid)
        eng.stop()
        loop.close()


def _sent_by_engine(eng: MediaEngine, sids: list[int]) -> int:
    return sum(eng.stats(sid)["packets_out"] for sid in sids)


def _measure(eng: MediaEngine, sids: list[int], lg, units: int, seconds: float,
             expected: Callable[[], int],
             carried: Callable[[float], tuple[float, float]]) -> LoadResult:
    ids = eng.media_thread_ids()
    assert ids is not None
    return _measure_thread(ids[0], lambda: _sent_by_engine(eng, sids), lg, units, seconds,
                           expected, carried)


def _measure_thread(ident: int, sent_out: Callable[[], int], lg, units: int, seconds: float,
                    expected: Callable[[], int],
                    carried: Callable[[float], tuple[float, float]]) -> LoadResult:
    """Run the load generator (pinned to its CPU) and measure thread `ident` meanwhile."""
    mask = os.sched_getaffinity(0)
    if len(mask) > 1:
        os.sched_setaffinity(0, {LOADGEN_CPU})
    try:
        out0 = sent_out()
        c0, t0 = _thread_cpu(ident), time.monotonic()
        lg.run(seconds, slots=SLOTS, spin=len(mask) > 1)
        c1, t1 = _thread_cpu(ident), time.monotonic()
        out1 = sent_out()
    finally:
        os.sched_setaffinity(0, mask)
    load, busy = carried(t1 - t0)
    return LoadResult(units, load, busy, t1 - t0, c1 - c0, lg.sent, expected(), lg.received,
                      lg.delay_percentile_us(0.5), lg.delay_percentile_us(0.99), out1 - out0)


def _stream(eng: MediaEngine, sids: list[int], remote_port: int, codec: str = "PCMU",
            event_pt: int | None = None) -> int:
    # The load generator sends payload type 0 on every flow, whatever the codec.
    sid = eng.open_stream()
    sids.append(sid)
    eng.set_remote(sid, "127.0.0.1", remote_port, codec=codec, pt=0, event_pt=event_pt)
    return sid


def voice_frame() -> bytes:
    """A μ-law frame with voice-like content (three partials, about -20 dBm0), so that the
    per-frame work that depends on the signal (DTMF detection) is not skipped on silence."""
    t = np.arange(160) / 8000
    pcm = sum(a * np.sin(2 * np.pi * f * t) for a, f in ((1500, 220), (900, 660), (400, 1430)))
    return _media.ulaw_encode(pcm.astype(np.int16))


def opus_frame() -> bytes:
    """A 160-byte Opus packet: 20 ms of a voice-like signal coded at 16 kHz, 24 kbit/s, then
    framed as code 3 with padding (RFC 6716 §3.2.5) up to 160 bytes, so the load generator's
    stamp (OPUS_STAMP_AT) lands in the padding and the packet stays valid."""
    t = np.arange(320 * 6) / 16000
    pcm = sum(a * np.sin(2 * np.pi * f * t) for a, f in ((1500, 220), (900, 660), (400, 3430)))
    enc = _media.OpusEncoder(16000)
    packets = [enc.encode(pcm[i:i + 320].astype(np.int16)) for i in range(0, len(pcm), 320)]
    toc, body = packets[-1][0], packets[-1][1:]
    pad = 160 - 3 - len(body)
    assert toc & 3 == 0 and 16 <= pad <= 254
    return bytes([(toc & 0xFC) | 3, 0x40 | 1, pad]) + body + bytes(pad)


OPUS_STAMP_AT = 160 - 16


def codec_bridge(calls: int, seconds: float, codec_a: str, codec_b: str) -> LoadResult:
    """Two-party calls between a codec_a leg and a codec_b leg, as `bridge`; both legs have
    telephone-event, as phones negotiate it. Same codec: relayed; else transcoded."""
    lg = loadgen.build().LoadGen(2, 2 * calls)
    if "OPUS" in (codec_a, codec_b):
        lg.set_payload(opus_frame(), stamp_at=OPUS_STAMP_AT)
    else:
        lg.set_payload(voice_frame())
    with _engine(2 * calls) as (eng, sids):
        for _ in range(calls):
            a = _stream(eng, sids, lg.port(0), codec_a, 101)
            b = _stream(eng, sids, lg.port(1), codec_b, 101)
            eng.connect(a, b)
            lg.add_flow(0, eng.local_port(a))
            lg.add_flow(1, eng.local_port(b))
        return _measure(eng, sids, lg, calls, seconds, lambda: lg.sent,
                        lambda wall: (lg.sent / 100 / seconds, seconds))


def bridge(calls: int, seconds: float) -> LoadResult:
    """Two-party calls: 4 flows of 50 pps per call (2 in, 2 forwarded out)."""
    lg = loadgen.build().LoadGen(2, 2 * calls)
    lg.set_payload(voice_frame())
    with _engine(2 * calls) as (eng, sids):
        for _ in range(calls):
            a, b = _stream(eng, sids, lg.port(0)), _stream(eng, sids, lg.port(1))
            eng.connect(a, b)
            lg.add_flow(0, eng.local_port(a))
            lg.add_flow(1, eng.local_port(b))
        return _measure(eng, sids, lg, calls, seconds, lambda: lg.sent,
                        lambda wall: (lg.sent / 100 / seconds, seconds))


def asyncio_bridge(calls: int, seconds: float, warm: bool = True) -> LoadResult:
    """The reference for `bridge`: the same calls through a plain asyncio UDP forwarder
    (`warm`: with glibc's mmap threshold above asyncio's read buffer, see asyncio_relay)."""
    lg = loadgen.build().LoadGen(2, 2 * calls)
    lg.set_payload(voice_frame())
    with AsyncioRelay(calls, lg.port(0), lg.port(1), warm) as relay:
        if len(os.sched_getaffinity(0)) > 1:
            os.sched_setaffinity(relay.native_id, {ENGINE_CPU})
        for port_a, port_b in relay.ports:
            lg.add_flow(0, port_a)
            lg.add_flow(1, port_b)
        return _measure_thread(relay.ident, lambda: relay.sent, lg, calls, seconds,
                               lambda: lg.sent, lambda wall: (lg.sent / 100 / seconds, seconds))


def conferences(count: int, seconds: float) -> LoadResult:
    """Three-party mix-minus conferences: 3 flows in, 3 mixed flows out per conference."""
    lg = loadgen.build().LoadGen(3, 3 * count)
    lg.set_payload(voice_frame())
    with _engine(3 * count) as (eng, sids):
        for _ in range(count):
            members = [_stream(eng, sids, lg.port(k)) for k in range(3)]
            eng.conference(members)
            for k, sid in enumerate(members):
                lg.add_flow(k, eng.local_port(sid))
        result = _measure(eng, sids, lg, count, seconds, lambda: int(3 * count * 50 * seconds),
                          lambda wall: (count, wall))
    # Mixed audio does not carry our send times (only a frame passed through alone does),
    # so a delay figure here would be biased: none is reported.
    return replace(result, p50_us=math.nan, p99_us=math.nan)


def moh_listeners(count: int, seconds: float) -> LoadResult:
    """Listeners of one MoH class: nothing in, one 50 pps flow out each."""
    lg = loadgen.build().LoadGen(1, 1)
    with _engine(count) as (eng, sids):
        music = (np.sin(np.arange(8000 * 5) * 0.05) * 6000).astype(np.int16)
        eng.define_moh_class("default", music)
        for _ in range(count):
            eng.play_moh(_stream(eng, sids, lg.port(0)), "default")
        return _measure(eng, sids, lg, count, seconds, lambda: int(count * 50 * seconds),
                        lambda wall: (count, wall))
