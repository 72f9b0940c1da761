"""A call leaves nothing for the cycle collector.

At hundreds of calls per second every object a call leaves in a reference cycle waits for a
full (generation 2) collection, which walks the whole live heap and stops the loop for it
(130-225 ms at 300-500 calls/s before these tests). So: a real `Server` in-process (the
sockets cut out: `bench.sig_cpu.Bench` captures what it sends and plays SIPp's messages)
takes a registration and authenticated calls (INVITE -> 401 -> ACK -> INVITE with
credentials -> 180/200 -> ACK, BYE) with automatic collection off; after every transaction
timer fired, `gc.collect()` must find no garbage at all.
"""

from __future__ import annotations

import gc
import logging
from collections import Counter
from collections.abc import Iterator

import pytest

from bench.sig_cpu import UAS, Bench

CALLS = 5


@pytest.fixture
def bench() -> Iterator[Bench]:
    logging.getLogger("mediasrv.stalls").setLevel(logging.ERROR)  # the start-up stall
    b = Bench(profile=None)
    try:
        b.register("102", "demo102", UAS)
        for n in range(3):  # warm-up: lazily made singletons, caches, prepared statements
            b.hang_up(b.set_up(n))
        fire_every_timer(b)
        gc.collect()
        yield b
    finally:
        b.close()


def fire_every_timer(b: Bench) -> None:
    """Every transaction timer (up to 64*T1) fires now, as if a minute went by."""
    b.driver.endpoint.handle_timer(b.loop.time() + 120)
    b.driver.flush()
    b.spin()


def garbage_by_type() -> Counter[str]:
    """What a full collection finds unreachable, by type (the objects are then freed)."""
    gc.set_debug(gc.DEBUG_SAVEALL)
    try:
        gc.collect()
        found = Counter(type(o).__qualname__ for o in gc.garbage)
    finally:
        gc.set_debug(0)
        gc.garbage.clear()
    return found


def test_calls_leave_no_cyclic_garbage(bench: Bench) -> None:
    gc.disable()
    try:
        bench.register("103", "demo103", ("127.0.0.1", 47003))
        calls = [bench.set_up(n) for n in range(10, 10 + CALLS)]
        for call in calls:
            bench.hang_up(call)
        del calls
        fire_every_timer(bench)
        garbage = garbage_by_type()
    finally:
        gc.enable()
    assert bench.driver.endpoint.transaction_count() == 0
    assert not bench.server.b2bua.legs
    assert sum(garbage.values()) == 0, f"cyclic garbage of {CALLS} calls: {dict(garbage)}"
