"""Forwarding delay against a media thread's busy share: where to set `rtp.max_busy`.

How this works: one media thread (a one-engine `MediaPool`, as the server runs it) carries
more and more relayed two-party calls from our sendmmsg load generator, the media thread
pinned to CPU 0 and the generator spinning on CPU 1 (as `engine_load`), and each step
reports the thread's busy share (what admission control reads, `MediaPool.admits`), its
rounds behind, and the forwarding delay p50/p99 the generator measured. The highest busy
share whose p99 is still within the goal (20 ms) is what `rtp.max_busy` may be set to on
this machine; the run prints it. It runs unchanged on a bigger machine:

    .venv/bin/python bench/busy_sweep.py [seconds] [calls ...]
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

PORT_MIN = engine_load.PORT_MIN  # above the test servers windows (tests/parallel.py)
GOAL_P99_US = 20_000
SIZES = (1000, 1200, 1400, 1500, 1600, 1700, 1800, 1900, 2000)


@dataclass
class Step:
    calls: int
    carried: float
    busy: float          # share of the wall time the thread spent handling rounds
    cpu: float           # the thread's CPU time over the wall time
    behind: float        # rounds that came back full, per second
    loss: float
    p50_us: float
    p99_us: float

    def line(self) -> str:
        return (f"{self.calls:>6} calls: carried {self.carried:>6.0f}, busy {self.busy:.2f}, "
                f"cpu {self.cpu:.2f}, behind {self.behind:>6.1f}/s, loss {self.loss:.4%}, "
                f"delay p50 {self.p50_us / 1000:>6.2f} ms p99 {self.p99_us / 1000:>6.2f} ms")


def step(calls: int, seconds: float) -> Step:
    lg = loadgen.build().LoadGen(2, 2 * calls)
    lg.set_payload(engine_load.voice_frame())
    pool = MediaPool("127.0.0.1", PORT_MIN, PORT_MIN + 4 * calls + 400, threads=1,
                     rtp_timeout=0)
    loop = asyncio.new_event_loop()
    pool.start(loop, lambda ev: None)
    mask = os.sched_getaffinity(0)
    pinned = len(mask) > 1
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
        ident, tid = pool.thread_ids()[0] or (0, 0)
        if pinned:
            os.sched_setaffinity(tid, {engine_load.ENGINE_CPU})
            os.sched_setaffinity(0, {engine_load.LOADGEN_CPU})
        load0 = pool.loads()[0]
        c0, t0 = time.clock_gettime(time.pthread_getcpuclockid(ident)), time.monotonic()
        lg.run(seconds, slots=engine_load.SLOTS, spin=pinned)
        c1, t1 = time.clock_gettime(time.pthread_getcpuclockid(ident)), time.monotonic()
        load1 = pool.loads()[0]
    finally:
        os.sched_setaffinity(0, mask)
        for sid in sids:
            pool.close_stream(sid)
        pool.stop()
        loop.close()
    wall = t1 - t0
    loss = max(0.0, 1 - lg.received / lg.sent) if lg.sent else 0.0
    return Step(calls, lg.sent / 100 / seconds,
                (load1["busy_seconds"] - load0["busy_seconds"]) / wall, (c1 - c0) / wall,
                (load1["rounds_behind"] - load0["rounds_behind"]) / wall, loss,
                lg.delay_percentile_us(0.5), lg.delay_percentile_us(0.99))


def main() -> None:
    seconds = float(sys.argv[1]) if len(sys.argv) > 1 else 5.0
    sizes = [int(x) for x in sys.argv[2:]] or list(SIZES)
    steps = []
    for calls in sizes:
        steps.append(step(calls, seconds))
        print(steps[-1].line(), flush=True)
    on_time = [s for s in steps if s.p99_us <= GOAL_P99_US and s.loss < 0.001]
    late = [s for s in steps if s not in on_time]
    if on_time:
        best = max(on_time, key=lambda s: s.calls)
        print(f"on time (p99 <= {GOAL_P99_US / 1000:.0f} ms) up to {best.calls} calls at busy "
              f"{best.busy:.2f}; first late step at busy "
              f"{min((s.busy for s in late), default=float('nan')):.2f}")


if __name__ == "__main__":
    main()
