"""Loop-stall watchdog: say when the asyncio loop stops turning, and what it was doing.

How this works: a heartbeat callback re-arms itself on the loop every `TICK` seconds and stamps
the time it ran. A daemon thread wakes every `TICK` and, when the stamp is older than
`threshold`, takes the loop thread's current stack from `sys._current_frames()` (the frame
that is running while the loop is stuck: a long callback, a blocking call, a lock wait) and
keeps the stack of the longest stall seen. When the loop turns again the stall is logged once
with its length and that stack, and counted. `gc.callbacks` time every garbage collection;
a collection longer than `threshold` is logged with its generation, wall and CPU time and
counted too, so a stall can be told apart from a GC pause (and a pause from a preemption).
A full collection walks every tracked object, so its pause grows with the live heap:
`freeze_startup_heap()` takes the start-up objects out of it, a transaction waiting out its
last timer keeps one tracked object (`Transaction.compact`), and an ended call dies by
reference counting (tests/integration/test_gc_garbage.py, bench/test_bench_gc.py). After
start-up the young generation's threshold is raised from CPython's 700 allocations to
`YOUNG_THRESHOLD` (`settle_collector()`): at 500 calls/s the interpreter's setting runs ~15
young collections a second and a full one (~100 ms on that heap) every 10 s or so, each pause
leaving a backlog the loop then has to catch up (measurements at `YOUNG_THRESHOLD`). Nothing
is frozen after start-up: a frozen object that later ends up in a cycle is never collected,
so a periodic `gc.freeze()` would turn any cycle a rarer path still makes into a leak. The
counters feed the Prometheus metrics (`mediasrv_loop_stalls_total`,
`mediasrv_gc_pauses_total`, and the longest of each).
"""

from __future__ import annotations

import asyncio
import gc
import logging
import sys
import threading
import time
import traceback
from dataclasses import dataclass, field

log = logging.getLogger("mediasrv.stalls")

TICK = 0.02


@dataclass
class StallStats:
    """What the watchdog saw: stalls (count, longest), GC pauses (count, longest, total)."""

    stalls: int = 0
    longest: float = 0.0
    gc_pauses: int = 0
    gc_longest: float = 0.0
    gc_seconds: float = 0.0
    gc_collections: list[int] = field(default_factory=lambda: [0, 0, 0])


# Allocations (minus deallocations) of tracked objects between young collections. Measured
# with `bench.ser --rates 500 --seconds 60 --pin`: 700 (CPython's): 16 of 30,000 calls failed,
# 160 retransmissions, 6 full collections (longest pause 96 ms), 1.78 ms of CPU per call;
# 10,000: 0 failed, 0 retransmissions, no full collection (longest pause 45-50 ms),
# 1.57-1.60 ms (two runs; 914 collections in the run at 700, 52 at 10,000).
# 50,000 (2026-12-06, `bench.sig_cpu` on a quiet core, alternated, 12 and 9 rounds each):
# 1.145 -> 1.107 and 1.322 -> 1.274 ms per call (-3.3 %, -3.6 %); collector CPU per 3,000
# calls 0.278 -> 0.184 s; longest pause in `bench.ser --rates 400` 81 vs 82 ms (one run each).
# Ended calls leave no cyclic garbage, so little waits longer to be freed. The young list a
# collection walks is ~2.3x the threshold (an older object's death counts against it too):
# at 400-500 calls/s ~116,000 live objects (79,000 of them key, address and timer tuples of
# transactions waiting out Timers D/J/L/M), 60-78 ms per young collection, which found no
# garbage. The SIP socket's receive buffer (`sip.udp_receive_buffer`) carries the server
# through such a pause; the kernel's default one did not (transport/udp.py). 20,000 instead
# (2026-12-06, 500/s x 45 s, alternated, 2 runs each): longer pauses, not shorter (144 and
# 108 ms vs 97 and 85: the middle generation's collections), 26 collections vs 10, +5 % CPU.
# The pause is ~120 ns per reference the young objects hold (557,000 in one 68 ms collection);
# the same number of fresh tuples alone collects in 1/10 of that: the heap's cache misses.
YOUNG_THRESHOLD = 50_000


def freeze_startup_heap() -> None:
    """Moves everything alive after start-up (modules, configuration, sounds, the parts'
    objects) out of the collector's sight: every later full collection has that much less to
    walk. Only for a process that runs one server (`mediasrv run`)."""
    gc.collect()
    gc.freeze()


def settle_collector() -> None:
    """What `mediasrv run` does to the collector once the server is up: the start-up heap
    frozen, the young generation's threshold raised to `YOUNG_THRESHOLD` (the older
    generations' stay 10 young / 10 middle collections)."""
    freeze_startup_heap()
    _, middle, old = gc.get_threshold()
    gc.set_threshold(YOUNG_THRESHOLD, middle, old)


class StallWatchdog:
    """Watches one loop; `start()` on the loop's thread, `stop()` from anywhere."""

    def __init__(self, threshold: float = 0.1) -> None:
        self.threshold = threshold
        self.stats = StallStats()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._loop_tid = 0
        self._beat = time.monotonic()
        self._handle: asyncio.TimerHandle | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._gc_start = self._gc_cpu = 0.0
        self._stack = ""
        self._stack_age = 0.0

    def start(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop, self._loop_tid = loop, threading.get_ident()
        self._beat = time.monotonic()
        self._handle = loop.call_later(TICK, self._heartbeat)
        gc.callbacks.append(self._on_gc)
        self._thread = threading.Thread(target=self._watch, name="mediasrv-stallwatch",
                                        daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._handle is not None:
            self._handle.cancel()
        if self._on_gc in gc.callbacks:
            gc.callbacks.remove(self._on_gc)
        if self._thread is not None:
            self._thread.join(1)

    def _heartbeat(self) -> None:
        now = time.monotonic()
        late = now - self._beat - TICK
        if late > self.threshold:
            self._report(late)
        self._beat = now
        assert self._loop is not None
        self._handle = self._loop.call_later(TICK, self._heartbeat)

    def _report(self, late: float) -> None:
        self.stats.stalls += 1
        self.stats.longest = max(self.stats.longest, late)
        stack, self._stack, self._stack_age = self._stack, "", 0.0
        log.warning("event loop stalled for %.0f ms; loop thread was in:\n%s", late * 1000,
                    stack or "(not sampled)")

    def _watch(self) -> None:
        while not self._stop.wait(TICK):
            age = time.monotonic() - self._beat
            if age > self.threshold and age > self._stack_age:
                frame = sys._current_frames().get(self._loop_tid)
                if frame is not None:
                    self._stack = "".join(traceback.format_stack(frame, limit=25))
                    self._stack_age = age

    def _on_gc(self, phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            self._gc_start, self._gc_cpu = time.perf_counter(), time.thread_time()
            return
        took = time.perf_counter() - self._gc_start
        cpu = time.thread_time() - self._gc_cpu
        gen = info.get("generation", 0)
        self.stats.gc_collections[gen] += 1
        self.stats.gc_seconds += took
        if took > self.stats.gc_longest:
            self.stats.gc_longest = took
        if took > self.threshold:
            self.stats.gc_pauses += 1
            log.warning("garbage collection of generation %d took %.0f ms (%.0f ms of CPU)",
                        gen, took * 1000, cpu * 1000)
