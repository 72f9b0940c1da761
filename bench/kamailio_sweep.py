"""Calls/s through Kamailio with 1, 2 and 3 mediasrv nodes, in one run (issue 14).

How this works: for each node count a fresh `tests.integration.cluster.Cluster` starts
(Kamailio + N nodes as processes on loopback, the shipped deploy/kamailio/kamailio.cfg). A
SIPp UAS registers to Kamailio as extension 102 (digest, `register_auth.xml`) and answers
every call (`uas_bench.xml`); a SIPp UAC (`uac_auth_bench.xml`) calls 102 as extensions
100, 101, 103...109 in turn, answering Kamailio's 407 on every call. Kamailio dispatches each
call to a node (hash over the caller), the node calls 102 back through Kamailio (lookup), so
every call is four INVITE transactions through the proxy and two dialogs in a node. No RTP:
this measures signalling; media capacity per node is bench/engine_sweep.py's.

Each node gets 2,000 RTP ports of its own (the tests' 200-port windows hold only 50 calls).
Calls fail under overload in one way: a node whose loop falls more than Kamailio's `FR_TIMER`
(2 s; `KAM_FR_TIMER_MS`) behind sends no 100 Trying in time, failure_route marks it down and
tries the next, and while every node is marked down new calls get 503 "No media node".

For each node count the offered rate steps up (100, 150, ... calls/s) until a call fails;
printed: the best calls/s of wall time among the steps before the first failed call, the
CPU seconds each process used per 1,000 calls (Kamailio with its children, each node), and
the ratio to the 1-node run. Not part of `make bench` (it takes a few minutes):
`.venv/bin/python bench/kamailio_sweep.py [CALLS_PER_STEP] [RATE...]`.
"""

from __future__ import annotations

import asyncio
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.integration.cluster import Cluster  # noqa: E402
from tests.peers.sipp import Sipp, SippResult  # noqa: E402

CALLERS = [str(e) for e in range(100, 110) if e != 102]
# the shipped cfg's 2 s: on a shared 2-core box a node stalled past the tests' 1.5 s gets
# marked down by failure_route and the next calls fail with 503 while it is out
FR_TIMER_MS = int(os.environ.get("KAM_FR_TIMER_MS", "2000"))
TICK = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    """User+system CPU of `pid` and of its direct children (Kamailio's workers)."""
    total = 0.0
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            fields = Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(entry) == pid or int(fields[1]) == pid:
            total += (int(fields[11]) + int(fields[12])) / TICK
    return total


async def run_pair(uas: Sipp, uac: Sipp) -> tuple[SippResult, float]:
    """The UAS in the background, the UAC to completion (timed); the UAS is stopped after."""
    await uas.start()
    t0 = time.perf_counter()
    result = await uac.run()
    wall = time.perf_counter() - t0
    await uas.wait(timeout=3)
    return result, wall


async def one(nodes: int, calls: int, rate: int) -> dict[str, float]:
    workdir = Path(tempfile.mkdtemp(prefix=f"kamsweep{nodes}-"))
    cluster = await Cluster(workdir, nodes_count=nodes, fr_timer_ms=FR_TIMER_MS,
                            rtp_span=2000).start()  # 1000 streams: 200 calls at once fit
    try:
        proxy = f"{cluster.proxy[0]}:{cluster.proxy[1]}"
        reg = Sipp("register_auth", proxy, users=[("102", "demo102")])
        reg.run_sync().check()
        timeout = calls / rate + 30
        uas = Sipp("uas_bench", port=reg.port, calls=calls, timeout=timeout)
        uac = Sipp("uac_auth_bench", proxy, calls=calls, rate=rate, limit=200, duration=0,
                   service="102", users=[(u, f"demo{u}") for u in CALLERS], timeout=timeout)
        assert cluster.kamailio is not None
        pids = [cluster.kamailio.pid] + [n.proc.pid for n in cluster.nodes if n.proc]
        cpu0 = [cpu_seconds(p) for p in pids]
        result, wall = await run_pair(uas, uac)
        cpu = [cpu_seconds(p) - c for p, c in zip(pids, cpu0, strict=True)]
        for run in (reg, uas, uac):
            run.cleanup()
        ok = result.successful
        return {"nodes": nodes, "ok": ok, "failed": result.failed, "wall": wall,
                "calls_per_s": ok / wall,
                "retrans": int(result.stats.get("Retransmissions(C)", 0) or 0),
                "kamailio_cpu_per_1000": 1000 * cpu[0] / max(ok, 1),
                "node_cpu_per_1000": [round(1000 * c / max(ok, 1), 2) for c in cpu[1:]]}
    finally:
        await cluster.stop()


async def sweep(nodes: int, calls: int, rates: list[int]) -> dict[str, float]:
    """The best calls/s among the steps before the first failed call (and its figures)."""
    best: dict[str, float] = {"nodes": nodes, "rate": 0, "calls_per_s": 0.0}
    for rate in rates:
        row = await one(nodes, calls, rate)
        print(f"  {nodes} node(s) at {rate}/s: {row['calls_per_s']:.0f} calls/s, "
              f"failed {row['failed']}, retransmissions {row['retrans']}", flush=True)
        if row["failed"]:
            break
        if row["calls_per_s"] > best["calls_per_s"]:
            best = {**row, "rate": rate}
    return best


async def main(calls: int, rates: list[int]) -> None:
    print(f"{calls} calls per step, offered at {rates} calls/s (limit 200 at once), "
          f"{os.cpu_count()} CPUs", flush=True)
    rows = [await sweep(n, calls, rates) for n in (1, 2, 3)]
    base = rows[0]["calls_per_s"]
    for r in rows:
        ratio = f"x{r['calls_per_s'] / base:.2f} of 1 node" if base else "1 node: none"
        print(f"{r['nodes']} node(s): {r['calls_per_s']:.0f} calls/s with no failure "
              f"(offered {r['rate']}/s; {ratio}); CPU s per "
              f"1000 calls: Kamailio {r.get('kamailio_cpu_per_1000', 0):.2f}, nodes "
              f"{r.get('node_cpu_per_1000', [])}")


if __name__ == "__main__":
    n_calls = int(sys.argv[1]) if len(sys.argv) > 1 else 600
    steps = [int(r) for r in sys.argv[2:]] or [100, 150, 200, 250, 300, 350]
    asyncio.run(main(n_calls, steps))
