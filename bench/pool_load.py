"""Relayed calls on N media threads (`rtp.threads`, issue 13), measured per busy core-second.

How this works: a `MediaPool` of N engines carries `calls` two-party calls from our
sendmmsg load generator (bench/loadgen); each call's two streams are opened as one group, so
the pool spreads the calls over the threads by load. Nothing is pinned: on a small machine
the load generator shares the cores with the media threads, as it would with signalling.
The figure that must not fall as threads are added is calls per busy core-second: calls
carried x wall time / (the CPU time of all media threads together). `per_thread` shows how
evenly the calls were spread and how busy each thread was (busy share, rounds behind).
One generator offers about 2,000 calls from its one thread, so past `CALLS_PER_GENERATOR`
calls the load is split over several generators running at once (each releases the GIL);
on a 2-core machine there is one, as before.

    .venv/bin/python bench/pool_load.py [seconds] [calls per thread ...]

prints, for 1, 2, ... up to the number of cores minus one media threads (at least 2), the
same sweep, so that it runs unchanged on a bigger machine, and after each sweep the
projection to `PROJECT_CORES` cores (`project`): the default `rtp.threads` (cores minus
one, one core left to signalling), each carrying the calls of one thread's measured calls
per busy core-second up to admission control's `max_busy`, discounted by the scaling
measured from 1 thread to the most this machine ran.
"""

from __future__ import annotations

import asyncio
import os
import sys
import threading
import time
from dataclasses import dataclass

import engine_load
import loadgen

from mediasrv.config import RtpConfig
from mediasrv.media.pool import MediaPool

PORT_MIN = 30000
PORT_MAX = 65000             # 4 ports a call (two streams, RTP and RTCP): ~8,700 calls in all
CALLS_PER_GENERATOR = 1500   # what one load generator thread offers with room to spare
PROJECT_CORES = 16


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
    count = max(1, -(-calls // CALLS_PER_GENERATOR))
    shares = [calls // count + (1 if k < calls % count else 0) for k in range(count)]
    gens = [loadgen.build().LoadGen(2, 2 * n) for n in shares]
    for lg in gens:
        lg.set_payload(engine_load.voice_frame())
    pool = MediaPool("127.0.0.1", PORT_MIN, PORT_MIN + 4 * calls + 400 * threads,
                     threads=threads, rtp_timeout=0)
    loop = asyncio.new_event_loop()
    pool.start(loop, lambda ev: None)
    sids: list[int] = []
    try:
        for n in range(calls):
            lg = gens[n % count]
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
        runners = [threading.Thread(target=lg.run, args=(seconds,),
                                    kwargs={"slots": engine_load.SLOTS, "spin": False})
                   for lg in gens[1:]]
        for r in runners:
            r.start()
        gens[0].run(seconds, slots=engine_load.SLOTS, spin=False)
        for r in runners:
            r.join()
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
    sent = sum(lg.sent for lg in gens)
    loss = max(0.0, 1 - sum(lg.received for lg in gens) / sent) if sent else 0.0
    # Each generator's percentiles are its own; the worst of them bounds the whole.
    return PoolResult(threads, calls, sent / 100 / seconds, wall, c1 - c0, loss,
                      max(lg.delay_percentile_us(0.5) for lg in gens),
                      max(lg.delay_percentile_us(0.99) for lg in gens), per_thread)


def project(one: PoolResult, most: PoolResult, cores: int = PROJECT_CORES,
            max_busy: float = RtpConfig.max_busy) -> str:
    """Relayed calls `cores` cores would carry on time, from the per-thread cost measured."""
    threads = max(1, cores - 1)
    scaling = min(1.0, most.per_core / one.per_core)
    calls = threads * one.per_core * max_busy * scaling
    return (f"projection to {cores} cores: {threads} media threads x {one.per_core:.0f} calls "
            f"per busy core-second x max_busy {max_busy} x scaling {scaling:.2f} (measured "
            f"1 -> {most.threads} threads) = {calls:,.0f} calls on time")


def main() -> None:
    seconds = float(sys.argv[1]) if len(sys.argv) > 1 else 5.0
    per_thread = [int(x) for x in sys.argv[2:]] or [500, 1000]
    max_threads = max(2, (os.cpu_count() or 2) - 1)
    print(f"{os.cpu_count()} cores, 1 to {max_threads} media threads", flush=True)
    for n in per_thread:
        runs: list[PoolResult] = []
        for threads in range(1, max_threads + 1):
            calls = min(n * threads, (PORT_MAX - PORT_MIN) // 4 - 100 * threads)
            if calls < n * threads:
                print(f"{threads} threads: {calls} calls, all the ports hold", flush=True)
            runs.append(bridge(threads, calls, seconds))
            print(f"{runs[-1].line()}; vs 1 thread {runs[-1].per_core / runs[0].per_core:.2f}",
                  flush=True)
        print(project(runs[0], runs[-1]), flush=True)


if __name__ == "__main__":
    main()
