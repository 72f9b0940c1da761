"""Issue 13 gates: media threads scale per busy core, and the authenticated call flow holds.

How this works: `pool_load.bridge` carries relayed calls on 1 and then 2 media threads in the
same run (the load generator shares the two cores), and compares calls per busy core-second
(goal: within 10 % of the one-thread figure; the gate is loose for a noisy machine).
`ser.run_rate` runs the SIPp flow real phones use (every INVITE challenged, 401, ACK,
INVITE with credentials) through a real server for a few seconds: no call may fail and no
loop stall may reach SIP's retransmission timer (T1 = 500 ms). `bench/pool_load.py` and
`python -m bench.ser` are the long versions for the report.
"""

from __future__ import annotations

import pool_load
import pytest

from bench import ser


def test_relayed_calls_per_busy_core_on_one_and_two_media_threads(benchmark) -> None:
    one = pool_load.bridge(1, 200, 2.0)
    two = benchmark.pedantic(pool_load.bridge, args=(2, 400, 2.0), rounds=1, iterations=1)
    ratio = two.per_core / one.per_core
    print(f"\n{one.line()}\n{two.line()}\n2 threads / 1 thread per busy core: {ratio:.2f}")
    benchmark.extra_info.update(one=round(one.per_core), two=round(two.per_core),
                                ratio=round(ratio, 2))
    assert one.loss < 0.001 and two.loss < 0.001
    assert [round(t["streams"]) for t in two.per_thread] == [400, 400]   # spread by load
    assert ratio >= 0.6, f"2 media threads carry {ratio:.2f} of 1 thread's calls per core"


@pytest.mark.peer
def test_authenticated_calls_without_failure_or_stall(benchmark) -> None:
    out = benchmark.pedantic(ser.run_rate, args=(100, 4.0, 500, None), rounds=1,
                             iterations=1)
    print(f"\n{out.line()}")
    benchmark.extra_info.update(ms_per_call=round(out.ms_per_call, 2), stalls=out.stalls,
                                retransmissions=out.retrans_uac + out.retrans_uas)
    assert out.ok == out.calls and out.failed == 0
    assert out.retrans_uac + out.retrans_uas <= out.calls // 100    # goal 0; noise allowance
    assert out.longest_stall < 0.5, f"loop stalled {out.longest_stall * 1000:.0f} ms"
