"""N media threads behind one engine interface: `rtp.threads` engines, a call's streams on one.

How this works: `MediaPool` runs `threads` independent `MediaEngine`s, each with its own media
thread, epoll set, ptime timer, stream table, prompts and MoH players, and its own slice of
the RTP port range. It offers the `MediaEngine` interface with pool-wide stream ids, so the
call layer does not know how many threads there are. A stream opened with a `group` (the
B2BUA passes the call id) goes to the engine that already holds that group's streams; the
first stream of a group goes to the engine with the fewest open streams (the load of a media
thread is its packets, and every stream of a bridged call carries the same rate), or, once
admission control has measured the threads, to the one least busy with the call added. When a
bridge or conference joins streams that live on different engines (a transfer joining legs
of two calls), the streams are moved to the engine of the first one: `detach_stream` takes
the stream out of its engine with its sockets open (same port: the phone notices nothing;
packets arriving meanwhile wait in the socket) and `attach_stream` installs it in the other,
so the joined streams are forwarded by one thread without locks between threads. A moved
stream's group follows it. Events carry each engine's own stream ids; the pool translates
them (and prompt play ids, made distinct per engine) back to pool ids. With `max_busy` set,
`admits()` refuses a new call when the thread it would land on would be busier than that
share with it (its share of the last half second plus the measured cost per stream of the
streams it gained since, the call's included; the B2BUA answers 503 with Retry-After,
RFC 3261 §21.5.4): a saturated thread runs behind and forwards late, so a call it cannot
carry on time is better not taken. `max_busy` 0.75 (the default) is where one thread still
forwards on time on a 2-core VM (`bench/busy_sweep.py` measures it on any machine).
"""

from __future__ import annotations

import asyncio
import dataclasses
import functools
from collections import Counter, OrderedDict
from collections.abc import Callable

import numpy as np

from mediasrv.media.engine import DtlsSink, MediaEngine, MediaError
from mediasrv.media.events import MediaEvent, PlayFinished

ADMIT_WINDOW = 0.5  # seconds of busy time behind an admission decision
# Streams below which a thread's cost per stream is not read from its busy share: with a few
# streams the share is mostly the thread's fixed wake-ups (ticks, events), and spreading that
# over two streams would make a burst of new calls look far costlier than it is. 100 streams
# (50 calls) are ~2.5 % of a core; a thread that small cannot be saturated by the calls that
# can arrive within one window, so it always admits: its busy share (wall time, preemption
# included) then measures the machine's other load, which refusing calls would not lessen.
ADMIT_MIN_STREAMS = 100
CLOSED_KEPT = 4096  # closed streams whose late events (a recording's end) still translate


def split_ports(port_min: int, port_max: int, parts: int) -> list[tuple[int, int]]:
    """`parts` disjoint even-aligned slices of [port_min, port_max], each holding pairs."""
    base = port_min + (port_min & 1)
    pairs = (port_max - base + 1) // 2
    if pairs < parts:
        raise MediaError(f"RTP port range {port_min}-{port_max} holds fewer than {parts} "
                         "port pairs (one per media thread at least)")
    out, start = [], base
    for k in range(parts):
        n = pairs // parts + (1 if k < pairs % parts else 0)
        out.append((start, start + 2 * n - 1))
        start += 2 * n
    return out


class MediaPool:
    """`threads` media engines with the `MediaEngine` interface and pool-wide stream ids."""

    def __init__(self, address: str, port_min: int, port_max: int, *, threads: int = 1,
                 max_busy: float = 0.0, **engine_kw: object) -> None:
        if threads < 1:
            raise MediaError("threads must be at least 1")
        self.max_busy = max_busy
        self._busy_at: tuple[float, list[float], list[int]] | None = None  # the last sample
        self._busy_share: list[float] = [0.0] * threads     # of the last window, per thread
        self._busy_streams: list[float] = [0.0] * threads   # its mean streams meanwhile
        self.engines = [MediaEngine(address, lo, hi, **engine_kw)  # type: ignore[arg-type]
                        for lo, hi in split_ports(port_min, port_max, threads)]
        self._where: dict[int, tuple[int, int]] = {}   # pool sid -> (engine, engine sid)
        self._pool_sid: list[dict[int, int]] = [{} for _ in self.engines]
        self._aliases: dict[int, list[tuple[int, int]]] = {}  # old ids of moved streams
        # Ids of closed streams: a recording ends after its stream (RecordingFinished).
        self._closed: OrderedDict[tuple[int, int], int] = OrderedDict()
        self._group_of: dict[int, str] = {}
        self._group_engine: dict[str, int] = {}
        self._group_size: Counter[str] = Counter()
        self._next_sid = 1
        self._on_event: Callable[[MediaEvent], None] | None = None
        self.dtls_sink: DtlsSink | None = None    # as MediaEngine's, with pool stream ids
        for k, eng in enumerate(self.engines):
            eng.dtls_sink = functools.partial(self._dtls, k)
        self.moves = 0

    @property
    def threads(self) -> int:
        return len(self.engines)

    # ---------------------------------------------------------------- lifecycle

    def start(self, loop: asyncio.AbstractEventLoop,
              on_event: Callable[[MediaEvent], None]) -> None:
        self._on_event = on_event
        for k, eng in enumerate(self.engines):
            eng.start(loop, lambda ev, k=k: self._translate(k, ev))

    def stop(self) -> None:
        for eng in self.engines:
            eng.stop()

    def thread_alive(self) -> bool:
        return any(eng.thread_alive() for eng in self.engines)

    def media_thread_ids(self) -> tuple[int, int] | None:
        """(pthread ident, kernel TID) of the first media thread (see `thread_ids`)."""
        return self.engines[0].media_thread_ids()

    def thread_ids(self) -> list[tuple[int, int] | None]:
        """(pthread ident, kernel TID) of each media thread, in engine order."""
        return [eng.media_thread_ids() for eng in self.engines]

    def _translate(self, k: int, ev: MediaEvent) -> None:
        sid = self._pool_sid[k].get(ev.stream) or self._closed.get((k, ev.stream))
        if sid is None or self._on_event is None:
            return
        fields: dict[str, object] = {"stream": sid}
        if isinstance(ev, PlayFinished):
            fields["play_id"] = ev.play_id * self.threads + k
        self._on_event(dataclasses.replace(ev, **fields))

    # ---------------------------------------------------------------- sounds

    def load_sound(self, name: str, samples_8k_int16: np.ndarray,
                   samples_16k_int16: np.ndarray | None = None) -> None:
        for eng in self.engines:
            eng.load_sound(name, samples_8k_int16, samples_16k_int16)

    def define_moh_class(self, name: str, samples_8k_int16: np.ndarray,
                         samples_16k_int16: np.ndarray | None = None) -> None:
        for eng in self.engines:
            eng.define_moh_class(name, samples_8k_int16, samples_16k_int16)

    # ---------------------------------------------------------------- streams

    def open_stream(self, group: str | None = None, *, dtmf: str = "auto") -> int:
        """A stream on the engine of `group` (the first of a group: the least loaded one),
        detecting DTMF in mode `dtmf` (see `MediaEngine.open_stream`)."""
        k = self._group_engine.get(group) if group is not None else None
        if k is None:
            k = self._lightest(self._stream_counts())
        local = self.engines[k].open_stream(dtmf=dtmf)
        sid, self._next_sid = self._next_sid, self._next_sid + 1
        self._bind(sid, k, local)
        if group is not None:
            self._group_of[sid] = group
            self._group_engine[group] = k
            self._group_size[group] += 1
        return sid

    def _bind(self, sid: int, k: int, local: int) -> None:
        self._where[sid] = (k, local)
        self._pool_sid[k][local] = sid

    def _at(self, sid: int) -> tuple[MediaEngine, int]:
        try:
            k, local = self._where[sid]
        except KeyError:
            raise MediaError(f"no stream {sid}") from None
        return self.engines[k], local

    def engine_of(self, sid: int) -> int:
        """Which media thread (engine index) carries the stream."""
        return self._at(sid) and self._where[sid][0]

    def close_stream(self, sid: int) -> dict[str, int]:
        """Close the stream; returns its final stats (see `MediaEngine.close_stream`)."""
        eng, local = self._at(sid)
        out = eng.close_stream(local)
        k, _ = self._where.pop(sid)
        for old_k, old_local in [(k, local), *self._aliases.pop(sid, [])]:
            self._pool_sid[old_k].pop(old_local, None)
            self._closed[(old_k, old_local)] = sid
        while len(self._closed) > CLOSED_KEPT:
            self._closed.popitem(last=False)
        group = self._group_of.pop(sid, None)
        if group is not None:
            self._group_size[group] -= 1
            if self._group_size[group] <= 0:
                del self._group_size[group]
                self._group_engine.pop(group, None)
        return out

    def open_stream_count(self) -> int:
        return sum(eng.open_stream_count() for eng in self.engines)

    def _move(self, sid: int, to: int) -> None:
        k, local = self._where[sid]
        if k == to:
            return
        blob = self.engines[k].detach_stream(local)
        new_local = self.engines[to].attach_stream(blob)
        self._aliases.setdefault(sid, []).append((k, local))  # its queued events still count
        self._bind(sid, to, new_local)
        group = self._group_of.get(sid)
        if group is not None:
            self._group_engine[group] = to
        self.moves += 1

    def _together(self, sids: list[int]) -> int:
        """Moves every stream to the engine of the first; returns that engine's index."""
        self._at(sids[0])
        to = self._where[sids[0]][0]
        for sid in sids[1:]:
            self._at(sid)
            self._move(sid, to)
        return to

    # ---------------------------------------------------------------- joins

    def connect(self, a: int, b: int) -> None:
        k = self._together([a, b])
        self.engines[k].connect(self._where[a][1], self._where[b][1])

    def conference(self, sids: list[int]) -> None:
        if not sids:
            raise MediaError("a conference needs 1 or more streams")
        k = self._together(list(sids))
        self.engines[k].conference([self._where[s][1] for s in sids])

    # ---------------------------------------------------------------- per stream

    def local_port(self, sid: int) -> int:
        eng, local = self._at(sid)
        return eng.local_port(local)

    def set_remote(self, sid: int, host: str, port: int, *, codec: str, pt: int,
                   event_pt: int | None) -> None:
        eng, local = self._at(sid)
        eng.set_remote(local, host, port, codec=codec, pt=pt, event_pt=event_pt)

    def set_srtp(self, sid: int, suite: str | None, *, rx_key: bytes = b"",
                 tx_key: bytes = b"", rtcp: bool = False) -> None:
        eng, local = self._at(sid)
        eng.set_srtp(local, suite, rx_key=rx_key, tx_key=tx_key, rtcp=rtcp)

    def set_dtls(self, sid: int, on: bool) -> None:
        eng, local = self._at(sid)
        eng.set_dtls(local, on)

    def send_dtls(self, sid: int, rtcp: bool, data: bytes, host: str, port: int) -> None:
        eng, local = self._at(sid)
        eng.send_dtls(local, rtcp, data, host, port)

    def _dtls(self, k: int, local: int, rtcp: bool, data: bytes, host: str, port: int) -> None:
        sid = self._pool_sid[k].get(local)
        if sid is not None and self.dtls_sink is not None:
            self.dtls_sink(sid, rtcp, data, host, port)

    def set_direction(self, sid: int, *, send: bool, recv: bool) -> None:
        eng, local = self._at(sid)
        eng.set_direction(local, send=send, recv=recv)

    def stats(self, sid: int) -> dict[str, int]:
        eng, local = self._at(sid)
        return eng.stats(local)

    def play_moh(self, sid: int, moh_class: str) -> None:
        eng, local = self._at(sid)
        eng.play_moh(local, moh_class)

    def play_prompt(self, sid: int, name: str) -> int:
        eng, local = self._at(sid)
        return eng.play_prompt(local, name) * self.threads + self._where[sid][0]

    def play_tone(self, sid: int, tone: str) -> None:
        eng, local = self._at(sid)
        eng.play_tone(local, tone)

    def play_silence(self, sid: int) -> None:
        eng, local = self._at(sid)
        eng.play_silence(local)

    def stop_feed(self, sid: int) -> None:
        eng, local = self._at(sid)
        eng.stop_feed(local)

    def feed(self, sid: int) -> str:
        eng, local = self._at(sid)
        return eng.feed(local)

    def set_dtmf(self, sid: int, *, mode: str = "auto", forward: bool = True) -> None:
        eng, local = self._at(sid)
        eng.set_dtmf(local, mode=mode, forward=forward)

    def set_mute(self, sid: int, muted: bool) -> None:
        eng, local = self._at(sid)
        eng.set_mute(local, muted)

    def send_dtmf(self, sid: int, digit: str, duration_ms: int = 100) -> None:
        eng, local = self._at(sid)
        eng.send_dtmf(local, digit, duration_ms)

    def record_start(self, sid: int, path: str, max_seconds: float) -> None:
        eng, local = self._at(sid)
        eng.record_start(local, path, max_seconds)

    def record_stop(self, sid: int) -> None:
        eng, local = self._at(sid)
        eng.record_stop(local)

    # ---------------------------------------------------------------- load

    def load(self) -> dict[str, float]:
        """The media threads' accounts summed (see `MediaEngine.load`)."""
        total: Counter[str] = Counter()
        for eng in self.engines:
            total.update(eng.load())
        return {k: float(v) for k, v in total.items()}

    def admits(self, now: float) -> bool:
        """Admission control: False when the media thread a new call would land on (the one
        with the fewest streams, as `open_stream` picks) would be busier than `max_busy`
        with it; always True with `max_busy` 0 and while that thread carries no more than
        `ADMIT_MIN_STREAMS` streams with the call.

        A thread's busy share is measured over windows of `ADMIT_WINDOW` seconds; it grows
        with its streams (each stream of a relayed call carries the same packet rate), so
        the share a thread will have is its last window's share plus the streams it gained
        since, the call's two included, at the measured cost per stream (streams counted as
        the mean of the window's two ends: exact when calls arrive steadily, cautious when
        they came at once). Calls admitted since the last sample thus count before they show in
        the measurement, and a burst of new calls cannot overshoot the threshold while a
        window runs."""
        if self.max_busy <= 0:
            return True
        streams = self._stream_counts()
        if self._busy_at is None:
            self._busy_at = (now, self._busy_seconds(), streams)
        elif now - self._busy_at[0] >= ADMIT_WINDOW:
            busy = self._busy_seconds()   # read once a window: load() is a locked command
            then, before, streams_then = self._busy_at
            self._busy_share = [(b - a) / (now - then) for a, b in zip(before, busy,
                                                                      strict=True)]
            self._busy_streams = [(a + b) / 2 for a, b in zip(streams_then, streams,
                                                              strict=True)]
            self._busy_at = (now, busy, streams)
        k = self._lightest(streams)
        return (streams[k] + 2 <= ADMIT_MIN_STREAMS
                or self.projected_busy(k, streams[k] + 2) <= self.max_busy)

    def projected_busy(self, k: int, streams: int) -> float:
        """The busy share thread `k` is expected to have carrying `streams` streams: its
        last measured share plus the cost of the streams it gained since, at the cost per
        stream measured over all threads (the threads run on like cores; a thread that
        had no stream then has no cost of its own to go by), over `ADMIT_MIN_STREAMS`
        streams at least."""
        per_stream = sum(self._busy_share) / max(sum(self._busy_streams), ADMIT_MIN_STREAMS)
        return max(0.0, self._busy_share[k] + per_stream * (streams - self._busy_streams[k]))

    def _busy_seconds(self) -> list[float]:
        return [eng.load()["busy_seconds"] for eng in self.engines]

    def _stream_counts(self) -> list[int]:
        return [eng.open_stream_count() for eng in self.engines]

    def _lightest(self, streams: list[int]) -> int:
        """The thread a new call goes to: the least busy with the call's two streams added,
        as last measured (`admits`); among equals (nothing measured) the fewest streams."""
        if len(streams) == 1:
            return 0
        return min(range(self.threads),
                   key=lambda i: (self.projected_busy(i, streams[i] + 2), streams[i]))

    def loads(self) -> list[dict[str, float]]:
        """Each media thread's account, with its open streams, in engine order."""
        return [{**eng.load(), "streams": float(eng.open_stream_count())}
                for eng in self.engines]
