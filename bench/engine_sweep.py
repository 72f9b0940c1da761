"""The long engine benchmark for reports: full-size scenarios, 5 s each, one line per run.

Run it alone (it uses both CPUs: the media thread pinned to CPU 0, the load generator to
CPU 1): `.venv/bin/python bench/engine_sweep.py [seconds]`. Capacity per core is measured
from the media thread's CPU time while carrying the load (see engine_load.py); when the
load generator cannot offer the nominal load on its one CPU, the `carried` column says so.
`loss` is what the load generator missed; `eng out` is what the engine itself sent, as a
fraction of what it should have sent (so loss after the engine shows as loss < eng out).
Calls go past the goal (2,000) until the loss passes 0.1 %: the largest size below it is
the relay capacity of one core; near it the media thread is saturated (load ~0.95, the
drain time included), runs behind, drains its sockets in batches, and the delay grows.
"""

from __future__ import annotations

import sys

import engine_load

SCENARIOS = (
    ("calls", engine_load.bridge, (500, 1000, 1500, 2000, 2200, 2400, 2600, 2800)),
    ("conferences", engine_load.conferences, (200, 600)),
    ("moh listeners", engine_load.moh_listeners, (1000, 3000)),
)


def main() -> None:
    seconds = float(sys.argv[1]) if len(sys.argv) > 1 else 5.0
    print(f"{'scenario':>14} {'units':>6} {'carried':>8} {'load':>6} {'per core':>9} "
          f"{'loss':>8} {'eng out':>8} {'p50 us':>8} {'p99 us':>8}")
    for name, run, sizes in SCENARIOS:
        for n in sizes:
            r = run(n, seconds)
            print(f"{name:>14} {n:>6} {r.carried:>8.0f} {r.load:>6.2f} {r.per_core:>9.0f} "
                  f"{r.loss:>8.4%} {r.engine_out / r.expected:>8.2%} {r.p50_us:>8.0f} "
                  f"{r.p99_us:>8.0f}", flush=True)


if __name__ == "__main__":
    main()
