"""A call leaves nothing for the cycle collector, and completed transactions stay small.

At hundreds of calls per second every object a call leaves in a reference cycle waits for a
full (generation 2) collection, which walks the whole live heap and stops the loop for it
(130-225 ms at 300-500 calls/s before these tests). So: a real `Server` in-process (the
sockets cut out: `bench.sig_cpu.Bench` captures what it sends and plays SIPp's messages)
takes a registration and authenticated calls (INVITE -> 401 -> ACK -> INVITE with
credentials -> 180/200 -> ACK, BYE; and calls the caller cancels while ringing, or the
callee answers busy) with automatic collection off; after every transaction timer fired,
`gc.collect()` must find no garbage at all. The same run checks what a waiting
transaction (Completed/Confirmed/Accepted, up to 32 s) keeps alive.
"""

from __future__ import annotations

import gc
import logging
from collections import Counter
from collections.abc import Iterator

import pytest

from bench.sig_cpu import SDP, UAC, UAS, Bench
from mediasrv.sip.auth import build_authorization
from mediasrv.sip.message import Request, Response
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


def ring_then_end(b: Bench, n: int, how: str) -> None:
    """101 calls 102 (authenticated INVITE), 102 rings; then the caller CANCELs ("cancel")
    or the callee answers 486 ("busy")."""
    uri, sdp = f"sip:102@{b.target}", SDP.format(port=6000 + 2 * n)
    head = (f"From: <sip:101@127.0.0.1>;tag=gc{n}\r\nTo: <{uri}>\r\n"
            f"Call-ID: {n}-gc@127.0.0.1\r\n")
    def invite(branch: str, cseq: int, auth: str) -> str:
        return (f"INVITE {uri} SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:{UAC[1]};branch={branch}"
                f"\r\n{head}CSeq: {cseq} INVITE\r\nContact: <sip:101@127.0.0.1:{UAC[1]}>\r\n"
                f"{auth}Content-Type: application/sdp\r\nContent-Length: {len(sdp)}\r\n\r\n{sdp}")
    first = b.branch()
    (challenge, _), = [(m, d) for m, d in b.deliver(invite(first, 1, ""), UAC)
                       if isinstance(m, Response) and m.status == 401]
    b.deliver(f"ACK {uri} SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:{UAC[1]};branch={first}\r\n"
              + head.replace(f"To: <{uri}>", f"To: {challenge.headers.get('To')}")
              + "CSeq: 1 ACK\r\nContent-Length: 0\r\n\r\n", UAC)
    auth = build_authorization(challenge.headers.get("WWW-Authenticate") or "", "INVITE", uri,
                               "101", "demo101")
    branch = b.branch()
    out = b.deliver(invite(branch, 2, f"Authorization: {auth}\r\n"), UAC)
    (inv,) = [m for m, d in out if d == UAS and isinstance(m, Request)]
    copied = "".join(f"{k}: {v}\r\n" for k, v in inv.headers.items()
                     if k in ("Via", "From", "Call-ID", "CSeq"))
    to = f"To: {inv.headers.get('To')};tag=gcu{n}\r\n"
    b.deliver(f"SIP/2.0 180 Ringing\r\n{copied}{to}Content-Length: 0\r\n\r\n", UAS)
    if how == "busy":
        b.deliver(f"SIP/2.0 486 Busy Here\r\n{copied}{to}Content-Length: 0\r\n\r\n", UAS)
        return
    out = b.deliver(f"CANCEL {uri} SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:{UAC[1]};"
                    f"branch={branch}\r\n{head}CSeq: 2 CANCEL\r\nContent-Length: 0\r\n\r\n", UAC)
    (cancel,) = [m for m, d in out if d == UAS and isinstance(m, Request)]
    c_copied = "".join(f"{k}: {v}\r\n" for k, v in cancel.headers.items()
                       if k in ("Via", "From", "To", "Call-ID", "CSeq"))
    b.deliver(f"SIP/2.0 200 OK\r\n{c_copied}Content-Length: 0\r\n\r\n", UAS)
    b.deliver(f"SIP/2.0 487 Request Terminated\r\n{copied}{to}Content-Length: 0\r\n\r\n", UAS)


@pytest.mark.parametrize("how", ["cancel", "busy"])
def test_unanswered_calls_leave_no_cyclic_garbage(bench: Bench, how: str) -> None:
    ring_then_end(bench, 1, how)  # warm-up of this path
    fire_every_timer(bench)
    gc.collect()
    gc.disable()
    try:
        for n in range(10, 10 + CALLS):
            ring_then_end(bench, n, how)
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
