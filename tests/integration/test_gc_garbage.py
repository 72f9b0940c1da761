"""A call leaves nothing for the cycle collector, and completed transactions stay small.

At hundreds of calls per second every object a call leaves in a reference cycle waits for a
full (generation 2) collection, which walks the whole live heap and stops the loop for it
(130-225 ms at 300-500 calls/s before these tests). So: a real `Server` in-process (the
sockets cut out: `bench.sig_cpu.Bench` captures what it sends and plays SIPp's messages)
takes a registration and authenticated calls (INVITE -> 401 -> ACK -> INVITE with
credentials -> 180/200 -> ACK, BYE) with automatic collection off; after every transaction
timer fired, `gc.collect()` must find no garbage at all. The same run checks what a waiting
transaction (Completed/Confirmed/Accepted, up to 32 s) keeps alive.
"""

from __future__ import annotations

import gc
import logging
from collections import Counter
from collections.abc import Iterator

import pytest

from bench.sig_cpu import UAS, Bench
from mediasrv.sip.transaction import Transaction

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


def tracked_from(root: Transaction) -> Counter[str]:
    """The gc-tracked objects only `root` keeps alive (not shared ones: classes, enums,
    the timer configuration), by type."""
    shared = (type, type(root.state), type(root.timers))
    seen, found, todo = {id(root)}, Counter[str](), [root]
    while todo:
        obj = todo.pop()
        found[type(obj).__qualname__] += 1
        for ref in gc.get_referents(obj):
            if id(ref) not in seen and gc.is_tracked(ref) and not isinstance(ref, shared):
                seen.add(id(ref))
                todo.append(ref)
    return found


def test_waiting_transactions_keep_no_parsed_messages(bench: Bench) -> None:
    endpoint = bench.driver.endpoint
    bench.hang_up(bench.set_up(100))
    gc.collect()  # tuples of strings and numbers are untracked by a collection
    waiting = [t for t in [*endpoint._servers.values(), *endpoint._clients.values()]
               if t.state in t.WAITING]
    # the 401'd INVITE (Confirmed), the INVITE answered 200 and the one we sent (Accepted),
    # the BYE received and the one we sent (Completed), and the REGISTER
    assert len(waiting) >= 5
    for txn in waiting:
        kept = tracked_from(txn)
        assert sum(kept.values()) == 1, (txn, dict(kept))  # the transaction only
