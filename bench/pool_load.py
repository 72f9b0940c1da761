"""Relayed calls on N media threads (`rtp.threads`, issue 13), measured per busy core-second.

How this works: a `MediaPool` of N engines carries `calls` two-party calls from our
sendmmsg load generator (bench/loadgen); each call's two streams are opened as one group, so
the pool spreads the calls over the threads by load. Nothing is pinned: on a small machine
the load generator shares the cores with the media threads, as it would with signalling.
The figure that must not fall as threads are added is calls per busy core-second: calls
carried x wall time / (the CPU time of all media threads together). `per_thread` shows how
evenly the calls were spread and how busy each thread was (busy share, rounds behind).

    .venv/bin/python bench/pool_load.py [seconds] [calls per thread ...]

prints, for 1, 2, ... up to the number of cores minus one media threads (at least 2), the
same sweep, so that it runs unchanged on a bigger machine; with a per-thread cost the
projection to 16 cores is `calls per busy core-second x 15` (one core left to signalling).
"""

from __future__ import annotations

import asyncio
import os
import sys
import time
from dataclasses import dataclass

import engine_load
import loadgen

from mediasrv.media.pool import MediaPool

PORT_MIN = 30000


@dataclass
class PoolResult:
    threads: int
    calls: int
    carried: float
    seconds: float
    cpu: float
    loss: float
    p50_us: float
    p99_us: float
    per_thread: list[dict[str, float]]

    @property
    def per_core(self) -> float:
        """Calls carried per busy core-second of the media threads."""
        return self.carried * self.seconds / max(self.cpu, 1e-9)

    def line(self) -> str:
        spread = ", ".join(f"t{k}: {d['streams'] / 2:.0f} calls, busy {d['busy_share']:.2f}, "
                           f"behind {d['rounds_behind']:.0f}"
                           for k, d in enumerate(self.per_thread))
        return (f"{self.threads} thread(s) x {self.calls} calls: carried {self.carried:.0f}, "
                f"{self.per_core:.0f} calls per busy core-second, media CPU "
                f"{self.cpu / self.seconds:.2f} cores, loss {self.loss:.4%}, delay p50 "
                f"{self.p50_us:.0f} us p99 {self.p99_us:.0f} us [{spread}]")


def _cpu(ident: int) -> float:
    return time.clock_gettime(time.pthread_getcpuclockid(ident))


def bridge(threads: int, calls: int, seconds: float) -> PoolResult:
    """`calls` two-party calls on a pool of `threads` media threads."""
    lg = loadgen.build().LoadGen(2, 2 * calls)
    lg.set_payload(engine_load.voice_frame())
    pool = MediaPool("127.0.0.1", PORT_MIN, PORT_MIN + 4 * calls + 400 * threads,
                     threads=threads, rtp_timeout=0)
    loop = asyncio.new_event_loop()
    pool.start(loop, lambda ev: None)
    sids: list[int] = []
    try:
        for n in range(calls):
            a, b = pool.open_stream(group=str(n)), pool.open_stream(group=str(n))
            sids += [a, b]
            for sid, k in ((a, 0), (b, 1)):
                pool.set_remote(sid, "127.0.0.1", lg.port(k), codec="PCMU", pt=0,
                                event_pt=None)
                lg.add_flow(k, pool.local_port(sid))
            pool.connect(a, b)
        idents = [ids[0] for ids in pool.thread_ids() if ids]
        load0 = pool.loads()
        c0, t0 = sum(_cpu(i) for i in idents), time.monotonic()
        lg.run(seconds, slots=engine_load.SLOTS, spin=False)
        c1, t1 = sum(_cpu(i) for i in idents), time.monotonic()
        load1 = pool.loads()
    finally:
        for sid in sids:
            pool.close_stream(sid)
        pool.stop()
        loop.close()
    wall = t1 - t0
    per_thread = [{"streams": b["streams"], "busy_share": (b["busy_seconds"] - a["busy_seconds"])
                   / wall, "rounds_behind": b["rounds_behind"] - a["rounds_behind"]}
                  for a, b in zip(load0, load1, strict=True)]
    expected = lg.sent
    loss = max(0.0, 1 - lg.received / expected) if expected else 0.0
    return PoolResult(threads, calls, lg.sent / 100 / seconds, wall, c1 - c0, loss,
                      lg.delay_percentile_us(0.5), lg.delay_percentile_us(0.99), per_thread)


def main() -> None:
    seconds = float(sys.argv[1]) if len(sys.argv) > 1 else 5.0
    per_thread = [int(x) for x in sys.argv[2:]] or [500, 1000]
    max_threads = max(2, (os.cpu_count() or 2) - 1)
    for n in per_thread:
        base = None
        for threads in range(1, max_threads + 1):
            r = bridge(threads, n * threads, seconds)
            base = base or r.per_core
            print(f"{r.line()}; vs 1 thread {r.per_core / base:.2f}", flush=True)


if __name__ == "__main__":
    main()
