"""Calls per second through the B2BUA, driven by SIPp (issue 3): a same-run ratio gate.

How this works: a real mediasrv runs on its own thread and event loop (T1 = 500 ms, as
deployed). A SIPp UAS (``tests/sipp/uas_bench.xml``: 180, 200, ACK, BYE; no RTP) registers
as extension 102 with digest auth; a SIPp UAC (``uac_bench.xml``: INVITE-200-ACK-BYE) calls
102 from 127.0.0.2, which the overlay lists in ``sip.trusted`` (no challenge for the caller;
both legs still go through the server, RFC 3261 §16-free B2BUA: two dialogs per call).
SIPp offers ``RATE`` calls/s, at most ``LIMIT`` at once, ``CALLS`` in all. The reference is
the same UAC straight to a SIPp UAS, in the same run, on the same machine.

Measured: calls/s of wall time (against the reference's), calls per CPU-second of the server
process (both its threads: "calls/s on one core"), failed calls, and retransmissions seen by
either SIPp and absorbed by the server. The CI gates are fractions of the goal (500 calls/s
per core, no failed call, no retransmission) because the machine is shared: the server must
keep up with the offered rate as well as half the reference does, carry half the goal per
CPU-second (it carries 640-800 calls per CPU-second on the shared 2-core dev box since the
issue 3 work: a 2.5x margin for noise), fail no call, and retransmit (almost) nothing.
``H7_BENCH_CALLS`` and ``H7_BENCH_RATE`` make the long run for the report.
"""

from __future__ import annotations

import asyncio
import os
import threading
import time
from collections.abc import Coroutine, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from mediasrv.config import DEFAULT_CONFIG_DIR, DEFAULT_PLUGIN_DIR, load_config
from mediasrv.server import Server
from tests.integration.conftest import site_config
from tests.peers.sipp import Sipp, SippResult

CALLS = int(os.environ.get("H7_BENCH_CALLS", "500"))
RATE = int(os.environ.get("H7_BENCH_RATE", "250"))
LIMIT = 100
GOAL_PER_CORE = 500
TRUSTED_HOST = "127.0.0.2"

pytestmark = pytest.mark.peer


class ServerThread:
    """A mediasrv on its own event loop thread, so synchronous SIPp runs can drive it."""

    def __init__(self, config_dirs: list[Path]) -> None:
        self.server = Server(load_config([DEFAULT_CONFIG_DIR, *config_dirs], DEFAULT_PLUGIN_DIR))
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, name="bench-server")

    def run(self, coro: Coroutine[Any, Any, Any]) -> Any:
        """Run ``coro`` on the server's loop and return its result."""
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(60)

    def __enter__(self) -> ServerThread:
        self._thread.start()
        self.run(self.server.start())
        return self

    def __exit__(self, *exc: object) -> None:
        self.run(self.server.stop())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(10)
        self.loop.close()

    @property
    def sip_addr(self) -> str:
        lst = self.server.config.sip.listen[0]
        return f"{lst.host}:{lst.port}"


@dataclass
class Run:
    """One SIPp caller run: its result, wall time and the server's CPU time (if any)."""

    result: SippResult
    wall: float
    cpu: float = 0.0

    @property
    def calls_per_s(self) -> float:
        return self.result.successful / self.wall

    @property
    def retransmissions(self) -> int:
        return int(self.result.stats.get("Retransmissions(C)", 0) or 0)


def sipp_pair(uas: Sipp, uac: Sipp) -> tuple[Run, SippResult]:
    """Run the UAS in the background and the UAC to completion; time the UAC."""
    uas_run: list[SippResult] = []
    background = threading.Thread(target=lambda: uas_run.append(uas.run_sync()))
    background.start()
    time.sleep(0.2)  # let the UAS bind
    cpu0, t0 = time.process_time(), time.perf_counter()
    result = uac.run_sync()
    run = Run(result, time.perf_counter() - t0, time.process_time() - cpu0)
    background.join(uas.timeout + 10)
    return run, uas_run[0]


# The RTP range lies below Linux's ephemeral ports (32768-60999), where the server's SIP port is
# picked: 50000-53999 held it one run in seven ('port 51079 is inside rtp.ports').
BENCH_SITE = (f'[sip]\ntimer_t1 = 0.5\ntrusted = ["{TRUSTED_HOST}/32"]\n'
              '[rtp]\nports = [20000, 23999]\ntimeout = 0\n')


def uac(remote: str, **kw: Any) -> Sipp:
    return Sipp("uac_bench", remote, calls=CALLS, rate=RATE, limit=LIMIT, duration=0,
                service="102", extra=["-i", TRUSTED_HOST], timeout=60, **kw)


@pytest.fixture
def server(tmp_path: Path) -> Iterator[ServerThread]:
    site = site_config(tmp_path)
    (site / "99-zz-bench.toml").write_text(BENCH_SITE)
    with ServerThread([site]) as srv:
        srv.server.b2bua.gatekeeper.digest.algorithms = ("MD5",)  # SIPp: MD5 only
        yield srv


def reference() -> Run:
    uas = Sipp("uas_bench", calls=CALLS, timeout=60)
    try:
        run, uas_result = sipp_pair(uas, uac(f"127.0.0.1:{uas.port}"))
        uas_result.check()
        return run
    finally:
        uas.cleanup()


def through(server: ServerThread) -> tuple[Run, SippResult]:
    reg = Sipp("register_auth", server.sip_addr, users=[("102", "demo102")])
    uas = Sipp("uas_bench", port=reg.port, calls=CALLS, timeout=60)
    caller = uac(server.sip_addr)
    try:
        reg.run_sync().check()
        return sipp_pair(uas, caller)
    finally:
        for run in (reg, uas, caller):
            run.cleanup()


def test_calls_per_second_through_the_b2bua(benchmark, server: ServerThread) -> None:
    ref = reference()
    run, uas_result = benchmark.pedantic(through, args=(server,), rounds=1, iterations=1)
    b2bua, endpoint = server.server.b2bua, server.server.driver.endpoint
    absorbed = endpoint.stats["retransmissions_absorbed"]
    retrans = run.retransmissions + int(uas_result.stats.get("Retransmissions(C)", 0) or 0)
    per_core = run.result.successful / run.cpu
    ratio = run.calls_per_s / ref.calls_per_s
    benchmark.extra_info.update(calls=CALLS, rate=RATE, calls_per_s=round(run.calls_per_s),
                                reference_calls_per_s=round(ref.calls_per_s),
                                per_core=round(per_core), failed=run.result.failed,
                                retransmissions=retrans, absorbed=absorbed)
    print(f"\n{CALLS} calls offered at {RATE}/s (limit {LIMIT}): through the B2BUA "
          f"{run.calls_per_s:.0f} calls/s wall, {per_core:.0f} calls per server CPU-second; "
          f"reference SIPp-SIPp {ref.calls_per_s:.0f} calls/s (ratio {ratio:.2f}); "
          f"failed {run.result.failed}, SIPp retransmissions {retrans}, absorbed {absorbed}")
    run.result.check()
    uas_result.check()
    assert run.result.successful == CALLS and run.result.failed == 0
    assert retrans <= CALLS // 200, f"{retrans} retransmissions"  # goal 0; noise allowance
    assert ratio >= 0.5, f"kept up with only {ratio:.2f} of the reference's rate"
    assert per_core >= GOAL_PER_CORE / 2, f"{per_core:.0f} calls per server CPU-second"
    assert not b2bua.legs and all(v == 0 for v in b2bua.leak_report().values())
    waiting = endpoint.transaction_states()  # Timers D, I, J, K run up to 32 s: not leaks
    assert set(waiting) <= {"Completed", "Confirmed", "Accepted", "Terminated"}, waiting
