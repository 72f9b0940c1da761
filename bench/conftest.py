"""Shared helpers for the benchmark suites: the media core import and ratio gates.

Gates are ratios measured in the same run (kernel vs reference, or cost vs the 20 ms frame
budget), never absolute times (DESIGN.md). `best_time` takes the best of a few repeats,
which is the least noisy estimate on a shared machine.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from types import ModuleType
from typing import Any

import pytest

FRAME_BUDGET_S = 0.020


@pytest.fixture(scope="session")
def media() -> ModuleType:
    """mediasrv._media; skip the benchmark if absent, but fail under CI=true."""
    try:
        from mediasrv import _media
    except ImportError as exc:
        if os.environ.get("CI") == "true":
            pytest.fail(f"mediasrv._media is not built: {exc}")
        pytest.skip(f"mediasrv._media is not built: {exc}")
    return _media


def best_time(fn: Callable[..., Any], *args: Any, number: int = 10, repeat: int = 5,
              clock: Callable[[], float] = time.perf_counter) -> float:
    """Best per-call time of fn(*args) over `repeat` runs of `number` calls."""
    best = float("inf")
    for _ in range(repeat):
        t0 = clock()
        for _ in range(number):
            fn(*args)
        best = min(best, (clock() - t0) / number)
    return best


def assert_ratio(what: str, fast_s: float, slow_s: float, at_least: float) -> float:
    """Assert slow/fast >= at_least; print and return the ratio."""
    ratio = slow_s / fast_s
    print(f"\n{what}: {ratio:.1f}x (gate {at_least:g}x)")
    assert ratio >= at_least, f"{what}: only {ratio:.2f}x, gate {at_least}x"
    return ratio


def assert_frame_share(what: str, per_frame_s: float, at_most: float) -> float:
    """Assert one 20 ms frame's cost is at most `at_most` of the budget; return the share."""
    share = per_frame_s / FRAME_BUDGET_S
    print(f"\n{what}: {per_frame_s * 1e6:.2f} us per 20 ms frame = {share:.4%} of budget "
          f"(gate {at_most:.2%})")
    assert share <= at_most, f"{what}: {share:.4%} of the frame budget, gate {at_most:.2%}"
    return share
