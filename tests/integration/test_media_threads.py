"""A real server with two media threads (`[rtp] threads = 2`), proved by audio.

Calls land on the thread with the fewest streams and every stream of a call stays on its
call's thread (the `#4` consultation too), as the per-thread stream gauge of `/metrics` shows.
A transfer that joins legs of two calls on different threads (the phone's own attended
transfer: REFER with Replaces) moves one stream to the other's thread; the audio each joined
phone hears may stop for at most 40 ms at the move (a `#4` transfer never needs a move: its
consultation already lives on the call's thread). Every phone sends its own identity tone
and the default MoH class is a 2200 Hz tone, so who hears whom, and the gap, are measured on
the audio the phones receive: arrival times are the kernel's, and the test phones send from
the event loop the server runs on, so their own lateness (a send gap beyond 20 ms, measured)
is added to the bound.
"""

from __future__ import annotations

import asyncio
import fcntl
import functools
import re
import struct
import time
from collections.abc import Callable
from typing import Any

import pytest

from mediasrv.call.leg import SipLeg
from mediasrv.media import pool as pool_module
from mediasrv.media.engine import MediaEngine
from mediasrv.media.pool import ADMIT_WINDOW, MediaPool
from tests.integration.conftest import MOH_HZ, Harness, wait_until
from tests.peers import audio
from tests.peers.call import Call
from tests.peers.phone import TestPhone

pytestmark = [pytest.mark.asyncio, pytest.mark.moh_tone, pytest.mark.rtp("threads = 2\n")]

MAX_GAP = 0.040  # the bound on the audio gap of a cross-thread move
SIOCGSTAMP = 0x8906  # <linux/sockios.h>: kernel arrival time of the last datagram read


def thread_streams(h: Harness) -> list[int]:
    """Open streams per media thread, read from the server's Prometheus exposition."""
    assert h.server.metrics is not None
    text = h.server.metrics.exposition()[0].decode()
    found = re.findall(r'^mediasrv_media_thread_streams\{thread="(\d+)"\} (\S+)$', text, re.M)
    return [int(float(v)) for _, v in sorted(found, key=lambda kv: int(kv[0]))]


class SimulatedLoad:
    """Each media thread's busy-time account as if every open stream cost `per_stream` of a
    core: the engines still forward the test's calls, only the busy share admission control
    reads is made deterministic (a real share depends on this shared machine's load). The
    account is brought up to date before each change of a thread's streams, as a real busy
    time grows continuously (admission control reads it only once a window)."""

    def __init__(self, pool: MediaPool, per_stream: float) -> None:
        self.busy = [0.0] * pool.threads
        self.last = [time.monotonic()] * pool.threads
        for k, eng in enumerate(pool.engines):
            eng.load = functools.partial(self.account, k, eng, per_stream)  # type: ignore
            for name in ("open_stream", "close_stream", "detach_stream", "attach_stream"):
                setattr(eng, name, accounted(getattr(eng, name), eng.load))

    def account(self, k: int, eng: MediaEngine, per_stream: float) -> dict[str, float]:
        now = time.monotonic()
        self.busy[k] += (now - self.last[k]) * per_stream * eng.open_stream_count()
        self.last[k] = now
        return {"busy_seconds": self.busy[k], "rounds_behind": 0.0}


def accounted(command: Callable[..., Any], account: Callable[[], object]) -> Callable[..., Any]:
    def run(*args: Any, **kw: Any) -> Any:
        account()
        return command(*args, **kw)
    return run


def leg_of(h: Harness, number: str) -> SipLeg:
    """The live leg towards extension `number` (the callee side of a call)."""
    return next(leg for leg in h.server.b2bua.legs if leg.number == number and not leg.inbound)


def thread_of(h: Harness, number: str) -> int:
    return h.server.engine.engine_of(leg_of(h, number).stream)


async def talking(h: Harness, caller: TestPhone, ext: str, callee: TestPhone) -> Call:
    call = await caller.call(h.uri(ext))
    assert await call.wait_final() == 200
    await caller.wait_hearing({callee.name})
    return call


class Tape:
    """Kernel arrival time (SIOCGSTAMP, wall clock: the test's event loop, busy with the
    transfer's signalling, does not shift it) of every frame one call hears that carries one
    of `sounds` (names of identity tones, or "MOH" for the 2200 Hz hold tone)."""

    def __init__(self, call: Call, sounds: set[str]) -> None:
        self.times: list[float] = []
        rtp = call.rtp
        fd = rtp._transport.get_extra_info("socket").fileno()
        received = rtp.datagram_received

        def record(data: bytes, addr: tuple[str, int]) -> None:
            sec, usec = struct.unpack("@ll", fcntl.ioctl(fd, SIOCGSTAMP, bytes(16)))
            received(data, addr)
            pcm = audio.decode(data[12:], data[1] & 0x7F)
            heard = audio.tones_in(pcm)
            if "MOH" in sounds and audio.amplitude_at(pcm, MOH_HZ)[0] >= audio.threshold(pcm):
                heard.add("MOH")
            if heard & sounds:
                self.times.append(sec + usec / 1e6)
        rtp.datagram_received = record  # type: ignore[method-assign]

    def longest_gap(self, since: float, until: float) -> float:
        return longest_gap(self.times, since, until)


class Sends:
    """Wall-clock time at which one call's RTP sender put each packet on the wire. The test
    phones send from the event loop the server's signalling runs on too: a send gap beyond
    20 ms is the test's own lateness, not the media thread's."""

    def __init__(self, call: Call) -> None:
        self.times: list[float] = []
        send = call.rtp._send

        def record(*args: object) -> None:
            self.times.append(time.time())
            send(*args)  # type: ignore[arg-type]
        call.rtp._send = record  # type: ignore[method-assign]

    def lateness(self, since: float, until: float) -> float:
        return max(0.0, longest_gap(self.times, since, until) - 0.020)


def longest_gap(times: list[float], since: float, until: float) -> float:
    inside = [t for t in times if since <= t <= until]
    assert len(inside) > (until - since) / 0.02 / 2, "too few packets to judge"
    return max(b - a for a, b in zip(inside, inside[1:], strict=False))


async def test_calls_spread_over_both_threads_and_a_consultation_stays_on_its_call(
        harness: Harness) -> None:
    a, b, c, d, e = [await harness.phone(n, x) for n, x in
                     zip("ABCDE", ("101", "102", "103", "104", "105"), strict=True)]
    first = await talking(harness, a, "102", b)
    second = await talking(harness, c, "104", d)
    assert harness.server.engine.threads == 2
    assert thread_streams(harness) == [2, 2]               # one call on each thread
    assert thread_of(harness, "102") != thread_of(harness, "104")
    home = thread_of(harness, "102")

    b_call = b.active_calls()[0]
    await b_call.send_dtmf("#4")                           # B consults E: A on hold
    await wait_until(lambda: a.hears_freqs(MOH_HZ) and not a.hears(), 3, "A to hear MoH")
    await b_call.send_dtmf("105#")                         # E answers at once
    await b.wait_hearing({"E"})
    await e.wait_hearing({"B"})
    assert thread_of(harness, "105") == home               # the consultation joined its call
    streams = thread_streams(harness)
    assert streams[home] == 3 and streams[1 - home] == 2
    await b_call.hangup()                                  # completes: A talks to E
    await a.wait_hearing({"E"})
    await e.wait_hearing({"A"})
    await c.wait_hearing({"D"})                            # the other call heard no one else
    await d.wait_hearing({"C"})
    assert harness.server.engine.moves == 0
    for call in (first, second):
        await call.hangup()
    await wait_until(lambda: thread_streams(harness) == [0, 0], 3, "streams to close")


async def test_attended_transfer_joining_two_threads_moves_a_stream_without_a_gap(
        harness: Harness) -> None:
    a, b, c = [await harness.phone(n, x) for n, x in zip("ABC", ("101", "102", "103"),
                                                         strict=True)]
    first = await talking(harness, a, "102", b)            # A-B on one thread
    assert await first.hold() == 200                       # B hears MoH
    await wait_until(lambda: b.hears_freqs(MOH_HZ), 3, "B to hear MoH")
    second = await talking(harness, a, "103", c)           # A-C on the other
    await c.wait_hearing({"A"})
    assert thread_of(harness, "102") != thread_of(harness, "103")
    assert thread_streams(harness) == [2, 2]
    b_call, c_call = b.active_calls()[0], c.active_calls()[0]
    tapes = {"B": Tape(b_call, {"MOH", "C"}), "C": Tape(c_call, {"A", "B"})}
    new_talker = {"B": Sends(c_call), "C": Sends(b_call)}   # whom each hears after the join
    await asyncio.sleep(0.7)                               # each tape's control stretch
    before = time.time()
    assert await first.refer(harness.uri("103"), replaces=second) == 202
    await first.wait_notify("SIP/2.0 200")
    await b.wait_hearing({"C"})
    await c.wait_hearing({"B"})
    joined = time.time()
    await asyncio.sleep(0.3)                               # the tapes run on past the join
    assert harness.server.engine.moves == 1
    assert thread_of(harness, "102") == thread_of(harness, "103")
    await wait_until(lambda: sorted(thread_streams(harness)) == [0, 2], 3,
                     "A's legs to close and B and C to share a thread")
    for name, tape in tapes.items():
        gap = tape.longest_gap(before - 0.05, joined + 0.2)
        late = new_talker[name].lateness(before - 0.05, joined + 0.2)
        print(f"\n# {name}: longest gap across the move {gap * 1000:.0f} ms, the test phone's "
              f"own send lateness {late * 1000:.0f} ms (before the move: "
              f"{tape.longest_gap(before - 0.6, before - 0.05) * 1000:.0f} ms)")
        assert gap <= MAX_GAP + late, \
            f"{name}'s audio stopped for {gap * 1000:.0f} ms at the move (the test phone " \
            f"sent {late * 1000:.0f} ms late)"
    await first.wait_state("terminated")
    await c.active_calls()[0].hangup()
    await wait_until(lambda: not b.active_calls(), 3, "B's call to end")


@pytest.mark.rtp("threads = 2\nmax_busy = 0.9\n")
async def test_the_call_no_thread_can_carry_on_time_gets_503_with_retry_after(
        harness: Harness, monkeypatch: pytest.MonkeyPatch) -> None:
    SimulatedLoad(harness.server.engine, per_stream=0.1)   # 0.2 of a core per call
    monkeypatch.setattr(pool_module, "ADMIT_MIN_STREAMS", 2)  # a few calls stand for many
    a, b = await harness.phone("A", "101"), await harness.phone("B", "102")
    calls = [await talking(harness, a, "102", b)]            # admission's first sample
    await asyncio.sleep(ADMIT_WINDOW + 0.1)
    calls.append(await talking(harness, a, "102", b))        # on the other thread
    await asyncio.sleep(ADMIT_WINDOW + 0.1)                  # a window of steady calls
    while (call := await a.call(harness.uri("102"))) and await call.wait_final() == 200:
        calls.append(call)
    # A thread carries 0.9 / 0.1 = 8 streams on time: four calls each, eight in all. No
    # thread may be given more; the projection may refuse a little early when the calls
    # came faster than admission measures (a window of 0.5 s), never late.
    streams = thread_streams(harness)
    assert 4 <= len(calls) <= 8 and max(streams) <= 8, (len(calls), streams)
    refused = [r for r in call.responses if r.status >= 200][-1]
    assert (refused.status, refused.get("Retry-After")) == (503, "5")
    await wait_until(lambda: len(b.active_calls()) == len(calls), 3, "B to have the calls")
    for mine, theirs in zip(calls, b.active_calls(), strict=True):
        await mine.wait_hearing({"B"})                        # every admitted call carries audio
        await theirs.wait_hearing({"A"})
    await calls.pop().hangup()                                # a call ends: room for one
    await asyncio.sleep(ADMIT_WINDOW + 0.1)
    retry = await a.call(harness.uri("102"))
    assert await retry.wait_final() == 200
    for call in [*calls, retry]:
        await call.hangup()
