"""Media engine capacity, gated as ratios measured in the same run (a few seconds each).

Each scenario loads the engine for 2 s from our sendmmsg load generator and measures the
media thread's CPU time: capacity per core = units x wall / engine CPU. The gates are a
quarter of the goals (2,000 calls, 600 three-party conferences, 3,000 MoH listeners per
core) because the machine is shared and noisy, and relayed calls are also measured against
a plain asyncio forwarder (bench/asyncio_relay.py) in the same run. `bench/engine_sweep.py`
runs the long version at full size for the report. Loss gates are absolute ratios (< 0.1 %
for calls).
"""

from __future__ import annotations

import engine_load


def _record(benchmark, result: engine_load.LoadResult) -> None:
    benchmark.extra_info.update(
        per_core=round(result.per_core), load=round(result.load, 3),
        loss=result.loss, p50_us=result.p50_us, p99_us=result.p99_us)
    print(f"\n{result.units} units: {result.per_core:.0f}/core, load {result.load:.2f}, "
          f"loss {result.loss:.4%}, delay p50 {result.p50_us:.0f} us p99 {result.p99_us:.0f} us")


def test_bridge_calls_per_core(benchmark) -> None:
    result = benchmark.pedantic(engine_load.bridge, args=(200, 2.0), rounds=1, iterations=1)
    _record(benchmark, result)
    assert result.sent == 200 * 2 * 50 * 2
    assert result.loss < 0.001
    assert result.per_core >= 2000 / 4
    # The plain asyncio forwarder of DESIGN.md, in both of glibc's regimes (asyncio_relay.py).
    cold = engine_load.asyncio_bridge(100, 2.0, warm=False)
    warm = engine_load.asyncio_bridge(200, 2.0, warm=True)  # last: leaves malloc fast
    for name, ref in (("warm", warm), ("cold", cold)):
        ratio = result.per_core / ref.per_core
        print(f"asyncio forwarder ({name} malloc): {ref.per_core:.0f}/core, load {ref.load:.2f}, "
              f"loss {ref.loss:.2%}; engine/asyncio = {ratio:.1f}x")
        benchmark.extra_info[f"vs_asyncio_{name}"] = round(ratio, 2)
        assert ref.received > 0
    # Gated against the warm forwarder only, the stricter reference. The cold one's cost is
    # its unmaps' TLB shootdowns, which depend on whether another thread of the process runs
    # on the other CPU at that moment: 7.8-8.5x in earlier runs, 1.6x in a clean CI run.
    assert result.per_core >= 1.1 * warm.per_core       # measured 1.4-1.8x


def test_conferences_per_core(benchmark) -> None:
    result = benchmark.pedantic(engine_load.conferences, args=(60, 2.0), rounds=1,
                                iterations=1)
    _record(benchmark, result)
    assert result.loss < 0.02          # the clock, not the load generator, sets the count
    assert result.per_core >= 600 / 4


def test_moh_listeners_per_core(benchmark) -> None:
    result = benchmark.pedantic(engine_load.moh_listeners, args=(300, 2.0), rounds=1,
                                iterations=1)
    _record(benchmark, result)
    assert result.loss < 0.02
    assert result.per_core >= 3000 / 4
