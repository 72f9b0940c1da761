"""Profile the server side of `test_bench_b2bua.py` outside pytest (issue 3).

How this works: the same SIPp flow as the benchmark (trusted SIPp UAC -> mediasrv -> SIPp UAS
registered as 102; INVITE-180-200-ACK-BYE, no RTP) is run once against a `ServerThread`. The
CPU time of each thread of this process is read from /proc before and after the run, so the
event-loop thread's CPU per call is reported apart from the media thread's and pytest's.
Optionally the loop thread runs under cProfile (`--profile FILE`, read it with `pstats`), or
with the server's INFO logging on, written to stderr as `mediasrv run` does (`--log INFO`).

    .venv/bin/python -m bench.b2bua_profile --calls 1500 --rate 400 [--profile out.prof]
"""

from __future__ import annotations

import argparse
import cProfile
import os
import tempfile
from collections.abc import Callable
from pathlib import Path

from bench import test_bench_b2bua as bench
from mediasrv.logs import setup_logging
from tests.integration.conftest import site_config
from tests.peers.sipp import SippResult


def thread_cpu() -> dict[str, float]:
    """CPU seconds (user + system) of each thread of this process, by thread id."""
    tick = os.sysconf("SC_CLK_TCK")
    out = {}
    for tid in os.listdir("/proc/self/task"):
        try:
            stat = Path(f"/proc/self/task/{tid}/stat").read_text()
        except FileNotFoundError:  # the thread ended since the listing
            continue
        fields = stat[stat.rindex(")") + 2:].split()
        out[tid] = (int(fields[11]) + int(fields[12])) / tick
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=1500)
    parser.add_argument("--rate", type=int, default=400)
    parser.add_argument("--profile", help="write the loop thread's cProfile stats here")
    parser.add_argument("--log", help="server log level (stderr), e.g. INFO")
    args = parser.parse_args()
    bench.CALLS, bench.RATE = args.calls, args.rate
    if args.log:
        setup_logging(args.log)
    site = site_config(Path(tempfile.mkdtemp(prefix="b2bua-profile-")))
    (site / "99-zz-bench.toml").write_text(bench.BENCH_SITE)
    with bench.ServerThread([site]) as srv:
        srv.server.b2bua.gatekeeper.digest.algorithms = ("MD5",)  # SIPp: MD5 only
        profiler = cProfile.Profile() if args.profile else None
        if profiler is not None:
            srv.run(_on_loop(profiler.enable))
        before = thread_cpu()
        run, uas = bench.through(srv)
        after = thread_cpu()
        if profiler is not None:
            srv.run(_on_loop(profiler.disable))
            profiler.dump_stats(args.profile)
        report(run, uas, srv, before, after)


async def _on_loop(fn: Callable[[], None]) -> None:
    fn()  # run by the server's loop thread: cProfile profiles the thread that enables it


def report(run: bench.Run, uas: SippResult, srv: bench.ServerThread,
           before: dict[str, float], after: dict[str, float]) -> None:
    ok = max(run.result.successful, 1)
    retrans = run.retransmissions + int(uas.stats.get("Retransmissions(C)", 0) or 0)
    print(f"{bench.CALLS} calls at {bench.RATE}/s: {run.calls_per_s:.0f} calls/s wall, "
          f"{ok / run.cpu:.0f} calls per server CPU-second, failed {run.result.failed}, "
          f"retransmissions {retrans}, "
          f"absorbed {srv.server.driver.endpoint.stats['retransmissions_absorbed']}")
    busy = sorted(((after[t] - before.get(t, 0.0), t) for t in after), reverse=True)
    for cpu, tid in busy[:3]:
        print(f"  thread {tid}: {cpu:.2f} s CPU, {cpu * 1000 / ok:.3f} ms per call")


if __name__ == "__main__":
    main()
