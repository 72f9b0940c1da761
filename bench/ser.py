"""Session establishment rate with the flow real phones use (issue 13; RFC 7501 §3, RFC 7502).

How this works: for each offered rate a fresh mediasrv runs on its own loop thread in this
process (`ServerThread`, T1 = 500 ms as deployed). A SIPp UAS registers as 102 with digest;
a SIPp UAC (`tests/sipp/uac_invite_auth_bench.xml`) calls it as extension 101, authenticating every
INVITE (INVITE -> 401 -> ACK -> INVITE with credentials -> 180/200 -> ACK, hold, BYE). With
`--pin` the whole server process (loop, media thread, everything) is held on CPU 0 and both
SIPps on CPU 1, as an operator would measure it. Each run reports failed calls, the
retransmissions both SIPps sent (a retransmission means the server answered late), the
server's CPU per call (every thread of this process: this process is only the server) and
the part of it spent in the kernel (socket calls, wake-ups: on a VM's loopback each datagram
that wakes a sleeping SIPp costs ~12 us of system time on top of the ~5 us of the send), the
loop stalls and GC pauses the server's watchdog saw (`mediasrv.stalls`), and the datagrams
the kernel dropped because the server's SIP socket was full (`sip.udp_receive_buffer`).

RFC 7502's session establishment rate is the highest offered rate with zero failed calls;
`--search` steps the rate up from the first one by `--step` until a run fails and reports it.

    .venv/bin/python -m bench.ser --rates 100,250,500 --seconds 60 --pin
    .venv/bin/python -m bench.ser --rates 300 --search --step 50 --seconds 30 --pin
    .venv/bin/python -m bench.ser --rates 250 --seconds 20 --profile /tmp/ser.prof
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import gc
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

from bench.b2bua_profile import _on_loop, thread_cpu
from bench.test_bench_b2bua import ServerThread, sipp_pair
from mediasrv.stalls import StallStats, settle_collector
from tests.integration.conftest import site_config
from tests.peers.sipp import Sipp

CALLER, CALLER_PASSWORD = "101", "demo101"
CALLEE, CALLEE_PASSWORD = "102", "demo102"


class PinnedSipp(Sipp):
    """A SIPp run under `taskset -c CPU` (None: wherever the scheduler puts it)."""

    cpu: str | None = None

    @property
    def command(self) -> list[str]:
        base = super().command
        return ["taskset", "-c", self.cpu, *base] if self.cpu else base


@dataclass
class Outcome:
    rate: int
    calls: int
    ok: int
    failed: int
    retrans_uac: int
    retrans_uas: int
    cpu: float
    loop_cpu: float
    media_cpu: float
    stalls: int
    longest_stall: float
    gc_longest: float
    gc_gen2: int
    gc_seconds: float = 0.0
    collections: int = 0
    kernel_cpu: float = 0.0
    udp_drops: int = 0  # datagrams the kernel dropped at the server's full SIP socket

    @property
    def core_share(self) -> float:
        """CPU over the time the calls were offered (calls / rate): the share of its core the
        server needed to keep up. Not over SIPp's wall time, which grows by its time-outs
        when calls fail and would make a saturated server look idle."""
        return self.cpu / (self.calls / self.rate)

    @property
    def ms_per_call(self) -> float:
        return self.cpu * 1000 / max(self.ok, 1)

    def line(self) -> str:
        return (f"{self.rate:4d}/s x {self.calls}: ok {self.ok}, failed {self.failed}, "
                f"retransmissions UAC {self.retrans_uac} UAS {self.retrans_uas}, "
                f"server CPU {self.cpu:.1f} s = {self.ms_per_call:.2f} ms/call "
                f"({self.core_share * 100:.0f} % of a core over the offered "
                f"{self.calls / self.rate:.0f} s; loop thread "
                f"{self.loop_cpu * 1000 / max(self.ok, 1):.2f}, media thread "
                f"{self.media_cpu * 1000 / max(self.ok, 1):.2f}; in the kernel "
                f"{self.kernel_cpu * 1000 / max(self.ok, 1):.2f}), loop stalls {self.stalls} "
                f"(longest {self.longest_stall * 1000:.0f} ms), longest GC "
                f"{self.gc_longest * 1000:.0f} ms, gen-2 GCs {self.gc_gen2}, GC "
                f"{self.gc_seconds * 1000 / max(self.ok, 1):.2f} ms/call in "
                f"{self.collections} collections, SIP datagrams dropped at the server's "
                f"full socket {self.udp_drops}")

    @property
    def clean(self) -> bool:
        return self.failed == 0 and self.ok == self.calls and \
            self.retrans_uac + self.retrans_uas == 0


def _site(hold_ms: int) -> Path:
    site = site_config(Path(tempfile.mkdtemp(prefix="ser-")))
    (site / "99-zz-bench.toml").write_text(
        '[sip]\ntimer_t1 = 0.5\n[rtp]\nports = [61000, 65534]\ntimeout = 0\n'
        '[security]\nrate_limit = 0\n')  # every SIPp call comes from one address
    # RTP above Linux's ephemeral range (32768-60999) and the test servers' windows
    # (tests/parallel.py, 20000-32599): a bench and a test suite can run side by side.
    return site


def run_rate(rate: int, seconds: float, hold_ms: int, profile: str | None) -> Outcome:
    calls = int(rate * seconds)
    limit = max(100, int(rate * (hold_ms / 1000 + 3)))
    timeout = seconds + hold_ms / 1000 + 40
    collecting, thresholds = gc.isenabled(), gc.get_threshold()
    gc.enable()  # as deployed, even under --benchmark-disable-gc: GC pauses are what it gates
    with ServerThread([_site(hold_ms)]) as srv:
        srv.server.b2bua.gatekeeper.digest.algorithms = ("MD5",)  # SIPp: MD5 only
        settle_collector()  # as `mediasrv run` does
        loop_tid = str(srv._thread.native_id)
        media_tid = str(srv.server.engine.media_thread_ids()[1])
        reg = PinnedSipp("register_auth", srv.sip_addr, users=[(CALLEE, CALLEE_PASSWORD)])
        uas = PinnedSipp("uas_bench", port=reg.port, calls=calls, timeout=timeout)
        uac = PinnedSipp("uac_invite_auth_bench", srv.sip_addr, calls=calls, rate=rate, limit=limit,
                         duration=hold_ms, service=CALLEE, users=[(CALLER, CALLER_PASSWORD)],
                         timeout=timeout, extra=["-au", CALLER, "-ap", CALLER_PASSWORD,
                                "-auth_uri", f"{CALLEE}@{srv.sip_addr}"])
        try:
            reg.run_sync().check()
            profiler = cProfile.Profile() if profile else None
            if profiler is not None:
                srv.run(_on_loop(profiler.enable))
            srv.run(asyncio.sleep(0.1))  # the watchdog reports a start-up stall (sounds) now
            srv.server.watchdog.stats = StallStats()  # count what happens during the run only
            before, kernel_before = thread_cpu(), os.times().system
            run, uas_result = sipp_pair(uas, uac)
            after, kernel = thread_cpu(), os.times().system - kernel_before
            drops = sum(udp.drops() or 0 for udp in srv.server.driver.udp)
            if run.result.failed:
                print(f"caller's errors (last lines):\n{run.result.errors[-1500:]}")
            if profiler is not None:
                srv.run(_on_loop(profiler.disable))
                profiler.dump_stats(profile)
        finally:
            gc.unfreeze()
            gc.set_threshold(*thresholds)
            if not collecting:
                gc.disable()
            for s in (reg, uas, uac):
                s.cleanup()
        st = srv.server.watchdog.stats
        used = {t: after[t] - before.get(t, 0.0) for t in after}
        cpu = sum(used.values())
        return Outcome(rate, calls, run.result.successful, run.result.failed,
                       run.retransmissions,
                       int(uas_result.stats.get("Retransmissions(C)", 0) or 0), cpu,
                       used.get(loop_tid, 0.0), used.get(media_tid, 0.0),
                       st.stalls, st.longest, st.gc_longest, st.gc_collections[2],
                       st.gc_seconds, sum(st.gc_collections), kernel, drops)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rates", default="100,250,500", help="offered calls/s, comma-separated")
    parser.add_argument("--seconds", type=float, default=60.0, help="length of each run")
    parser.add_argument("--hold", type=int, default=1000, help="call length in ms")
    parser.add_argument("--pin", action="store_true",
                        help="server process on CPU 0, SIPp on CPU 1")
    parser.add_argument("--search", action="store_true",
                        help="step up from the first rate until a run fails")
    parser.add_argument("--step", type=int, default=50)
    parser.add_argument("--profile", help="cProfile the loop thread of the last run into FILE")
    args = parser.parse_args()
    if args.pin:
        os.sched_setaffinity(0, {0})  # threads started from here on inherit it
        PinnedSipp.cpu = "1"
    rates = [int(r) for r in args.rates.split(",")]
    best = 0
    while rates:
        rate = rates.pop(0)
        out = run_rate(rate, args.seconds, args.hold, args.profile)
        print(out.line(), flush=True)
        if args.search:
            if out.failed == 0 and out.ok == out.calls:
                best = rate
                rates.append(rate + args.step)
            else:
                print(f"session establishment rate: {best} calls/s (first failure at "
                      f"{rate}/s)")


if __name__ == "__main__":
    main()
