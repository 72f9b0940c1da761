"""MediaPool over real UDP: two media threads, a call's streams on one, joins across threads.

Audio proves the paths: each RTP peer sends its own identity tone every 20 ms from a sender
thread, and receivers note the arrival time of every packet, so a join that moves a stream
from one media thread to the other is checked for who hears whom and for the longest gap.
"""

from __future__ import annotations

import asyncio
import inspect
import threading
import time

import pytest
from rtp_peer import RtpPeer, assert_ports_free, parse

from mediasrv.media import pool as pool_module
from mediasrv.media.engine import MediaEngine, MediaError
from mediasrv.media.events import RecordingFinished
from mediasrv.media.pool import MediaPool, split_ports
from tests.parallel import engine_ports
from tests.peers import audio

PORTS = 40
MAX_GAP = 0.040  # the bound on the audio gap of a cross-thread move


@pytest.fixture
async def pool(request: pytest.FixtureRequest):
    lo, hi = engine_ports(PORTS)
    p = MediaPool("127.0.0.1", lo, hi, threads=2, rtp_timeout=0)
    p.events = []  # type: ignore[attr-defined]
    p.start(asyncio.get_running_loop(), p.events.append)  # type: ignore[attr-defined]
    yield p
    leaked = p.open_stream_count()
    p.stop()
    assert leaked == 0, f"{leaked} streams left open"
    assert not p.thread_alive()
    assert_ports_free(lo, hi)


def test_pool_offers_every_command_of_the_engine() -> None:
    """The call layer holds a pool where it used to hold an engine: a command added to
    MediaEngine must be added to MediaPool too (with the same signature)."""
    own = {"detach_stream", "attach_stream"}       # the moving parts, the pool's own business
    for name, fn in inspect.getmembers(MediaEngine, inspect.isfunction):
        if name.startswith("_") or name in own:
            continue
        assert hasattr(MediaPool, name), f"MediaPool lacks {name}"
        assert inspect.signature(getattr(MediaPool, name)) == inspect.signature(fn), name


def test_port_range_is_split_in_even_aligned_slices() -> None:
    assert split_ports(20000, 20011, 2) == [(20000, 20005), (20006, 20011)]
    assert split_ports(20001, 20010, 3) == [(20002, 20005), (20006, 20007), (20008, 20009)]
    with pytest.raises(MediaError, match="fewer than 3 port pairs"):
        split_ports(20000, 20003, 3)


async def test_streams_of_a_call_share_a_thread_and_calls_spread(pool: MediaPool) -> None:
    a1, b1 = pool.open_stream(group="call-1"), pool.open_stream(group="call-1")
    a2 = pool.open_stream(group="call-2")
    b2 = pool.open_stream(group="call-2")
    assert pool.engine_of(a1) == pool.engine_of(b1)
    assert pool.engine_of(a2) == pool.engine_of(b2) != pool.engine_of(a1)
    ids = pool.thread_ids()
    assert len({t[1] for t in ids if t}) == 2                   # two media threads run
    assert [ld["streams"] for ld in pool.loads()] == [2.0, 2.0]
    for sid in (a1, b1, a2, b2):
        pool.close_stream(sid)
    a3 = pool.open_stream(group="call-1")                      # the group was forgotten
    assert pool.engine_of(a3) == 0
    pool.close_stream(a3)


class Talkers:
    """Peers that each send their tone every 20 ms, and note when packets arrive."""

    def __init__(self, tones: dict[str, str]) -> None:
        self.peers = {name: RtpPeer() for name in tones}
        self.frames = {name: audio.encode(audio.sine([audio.TONE_HZ[t]], 160 * 50))
                       for name, t in tones.items()}
        self.to: dict[str, int] = {}
        self.heard: dict[str, list[tuple[float, bytes]]] = {n: [] for n in tones}
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._send, daemon=True)]
        self._threads += [threading.Thread(target=self._recv, args=(n,), daemon=True)
                          for n in tones]

    def start(self) -> None:
        for t in self._threads:
            t.start()

    def _send(self) -> None:
        k, start = 0, time.monotonic()
        while not self._stop.is_set():
            for name, port in list(self.to.items()):
                frame = self.frames[name][160 * (k % 50):160 * (k % 50 + 1)]
                self.peers[name].send(port, frame)
            k += 1
            time.sleep(max(0.0, start + 0.02 * k - time.monotonic()))

    def _recv(self, name: str) -> None:
        sock = self.peers[name].sock
        sock.settimeout(0.05)
        while not self._stop.is_set():
            try:
                data = sock.recv(4096)
            except TimeoutError:
                continue
            except OSError:
                return
            self.heard[name].append((time.monotonic(), parse(data).payload))

    def tones(self, name: str, since: float) -> set[str]:
        pcm = audio.decode(b"".join(p for t, p in self.heard[name] if t >= since))
        return audio.tones_in(pcm)

    def longest_gap(self, name: str, start: float, end: float) -> float:
        times = [t for t, _ in self.heard[name] if start <= t <= end]
        return max(b - a for a, b in zip(times, times[1:], strict=False))

    def close(self) -> None:
        self._stop.set()
        for t in self._threads:
            t.join(1)
        for p in self.peers.values():
            p.close()


async def test_join_across_threads_moves_a_stream_without_a_gap(pool: MediaPool) -> None:
    talk = Talkers({"alice": "A", "bob": "B", "xavier": "C", "yvonne": "D"})
    sids = {}
    for name, call in (("alice", "1"), ("xavier", "1"), ("bob", "2"), ("yvonne", "2")):
        sid = sids[name] = pool.open_stream(group=f"call-{call}")
        pool.set_remote(sid, "127.0.0.1", talk.peers[name].port, codec="PCMU", pt=0,
                        event_pt=None)
        talk.to[name] = pool.local_port(sid)
    pool.connect(sids["alice"], sids["xavier"])
    pool.connect(sids["bob"], sids["yvonne"])
    assert pool.engine_of(sids["alice"]) != pool.engine_of(sids["bob"])
    talk.start()
    try:
        await asyncio.sleep(0.6)
        before = time.monotonic()
        assert talk.tones("bob", before - 0.4) == {"D"}          # bob hears yvonne
        pool.connect(sids["alice"], sids["bob"])                 # the transfer's join
        joined = time.monotonic()
        await asyncio.sleep(0.6)
        assert pool.engine_of(sids["bob"]) == pool.engine_of(sids["alice"])
        assert pool.moves == 1
        assert talk.tones("alice", joined + 0.1) == {"B"}        # alice hears bob
        assert talk.tones("bob", joined + 0.1) == {"A"}          # bob hears alice
        assert talk.tones("xavier", joined + 0.1) == set()       # the others hear no one
        gap = talk.longest_gap("bob", before - 0.05, joined + 0.4)
        # The test's own sender and receiver threads jitter on a loaded machine: the move may
        # add at most 20 ms to the longest gap they show without it (20 ms: 40 ms in all).
        control = talk.longest_gap("bob", before - 0.5, before - 0.05)
        assert gap < max(MAX_GAP, control + 0.020), \
            f"bob's audio stopped for {gap * 1000:.0f} ms at the move ({control * 1000:.0f} " \
            "ms without one)"
        assert pool.stats(sids["bob"])["packets_in"] > 40        # counters moved with it
        assert pool.local_port(sids["bob"]) == talk.to["bob"]    # and its port
    finally:
        talk.close()
        final = {name: pool.close_stream(sid) for name, sid in sids.items()}
    assert final["bob"]["packets_in"] > 40                       # the final counters
    with pytest.raises(MediaError):
        pool.local_port(sids["bob"])


async def test_admission_refuses_calls_once_every_thread_is_busy(
        pool: MediaPool, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(pool_module, "ADMIT_MIN_STREAMS", 1)   # one call stands for many
    peers = [RtpPeer(), RtpPeer()]
    a, b = (pool.open_stream(group="call-1") for _ in peers)
    try:
        for sid, peer in zip((a, b), peers, strict=True):
            pool.set_remote(sid, "127.0.0.1", peer.port, codec="PCMU", pt=0, event_pt=None)
        pool.connect(a, b)
        assert pool.admits(0.0)                      # max_busy 0: admission control is off
        pool.max_busy = 1e-6                         # any work at all counts as saturation
        assert pool.admits(100.0)                    # first sample: nothing measured yet
        for _ in range(50):
            peers[0].send(pool.local_port(a), bytes(160))
            await asyncio.sleep(0.004)
        assert pool.admits(100.1)                    # within the window: last verdict stands
        assert not pool.admits(100.5)                # both threads were busy: refuse
        pool.max_busy = 0.5
        assert pool.admits(101.0)                    # a little traffic is far from 50 %
    finally:
        for sid in (a, b):
            pool.close_stream(sid)
        for p in peers:
            p.close()


class BusyClock:
    """Stands in for each engine's busy-time account: `busy[k]` seconds so far."""

    def __init__(self, pool: MediaPool) -> None:
        self.busy = [0.0] * pool.threads
        for k, eng in enumerate(pool.engines):
            eng.load = lambda k=k: {"busy_seconds": self.busy[k]}  # type: ignore[method-assign]


async def test_admission_projects_each_threads_busy_share_to_its_streams(
        pool: MediaPool, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(pool_module, "ADMIT_MIN_STREAMS", 2)  # a few streams stand for many
    clock = BusyClock(pool)
    pool.max_busy = 0.8
    sids = [pool.open_stream(group="big") for _ in range(6)]
    sids += [pool.open_stream(group="small") for _ in range(2)]
    assert [ld["streams"] for ld in pool.loads()] == [6.0, 2.0]
    try:
        assert pool.admits(0.0)                      # first sample: nothing measured yet
        clock.busy = [0.3, 0.1]                      # shares 0.6 and 0.2: 0.1 per stream
        admitted = 0
        while pool.admits(0.5 + 0.01 * admitted):    # one window, then projections only
            sids += [pool.open_stream(group=f"call-{admitted}") for _ in range(2)]
            admitted += 1
        # 0.1 per stream and max_busy 0.8: 8 streams a thread, so three calls go to the
        # quieter thread and one to the other; the fifth would overload either.
        assert admitted == 4
        assert [ld["streams"] for ld in pool.loads()] == [8.0, 8.0]
        assert pool.projected_busy(0, 10) == pytest.approx(1.0)
        pool.close_stream(sids.pop())
        pool.close_stream(sids.pop())
        assert pool.admits(0.6)                      # a call ended: room again
        monkeypatch.setattr(pool_module, "ADMIT_MIN_STREAMS", 100)
        clock.busy = [0.33, 0.13]                    # 0.05 each over 0.6 s with ~7 streams
        assert pool.admits(1.1)                      # each: mostly a thread's fixed cost,
        assert pool.projected_busy(0, 100) < 0.2     # not read as 0.007 a stream (0.7)
    finally:
        for sid in sids:
            pool.close_stream(sid)


async def test_a_thread_with_few_streams_admits_however_busy_the_machine_keeps_it(
        pool: MediaPool, monkeypatch: pytest.MonkeyPatch) -> None:
    """Below ADMIT_MIN_STREAMS a thread's busy share is its neighbours' doing (its busy time is
    wall time, preemption included): a call is still taken; past it the projection decides."""
    clock = BusyClock(pool)
    pool.max_busy = 0.75
    sids = [pool.open_stream(group=g) for g in ("a", "a", "b", "b")]
    try:
        assert pool.admits(0.0)
        clock.busy = [0.45, 0.45]                    # 0.9 of each thread over the window
        assert pool.admits(0.5)
        assert pool.projected_busy(0, 4) > pool.max_busy
        monkeypatch.setattr(pool_module, "ADMIT_MIN_STREAMS", 3)   # 2 + the call's 2 > 3
        assert not pool.admits(0.6)
    finally:
        for sid in sids:
            pool.close_stream(sid)


async def test_a_recording_that_ends_with_its_stream_reports_the_pool_id(
        pool: MediaPool, tmp_path) -> None:
    pool.open_stream(group="other")                        # the next call goes to thread 1
    first = pool.open_stream(group="call")
    pool.record_start(first, str(tmp_path / "r.wav"), 5.0)
    pool.close_stream(first)                                # the recording ends after it
    for _ in range(100):
        done = [e for e in pool.events if isinstance(e, RecordingFinished)]
        if done:
            break
        await asyncio.sleep(0.02)
    assert [e.stream for e in done] == [first]
    pool.close_stream(first - 1)
