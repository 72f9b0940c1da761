"""Parked socket pairs (ext/engine_ports.pyx): a closed stream's bound RTP/RTCP sockets serve a
later stream. A reused pair carries nothing the old call's phone sent, a port is never two
streams', a pair rests before it is reused while other ports are free, a stream moved in from
another media thread is not parked, and stop() closes every parked pair."""

from __future__ import annotations

import asyncio
import errno
import socket

import pytest
from rtp_peer import assert_ports_free, wire

from mediasrv.media.engine import MediaEngine, MediaError
from mediasrv.media.pool import MediaPool
from tests.parallel import engine_ports

REST = 0.5   # ENG_PARK_REST_NS: how long a parked pair rests before it is reused


def bound_elsewhere(port: int) -> bool:
    """True when an outsider cannot bind the port (someone holds it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError as exc:
            assert exc.errno == errno.EADDRINUSE
            return True
    return False


async def test_a_reused_pair_delivers_nothing_the_old_call_sent(peers) -> None:
    """The engine is not started until the pair is reused, so no media thread drops the
    old call's datagrams meanwhile: only the reuse itself can have done it."""
    lo, hi = engine_ports(4)
    eng = MediaEngine("127.0.0.1", lo, hi, rtp_timeout=0)
    try:
        phone, far = peers(2)
        a, b = wire(eng, phone), wire(eng, far)
        port = eng.local_port(a)
        eng.close_stream(a)
        for i in range(5):                       # the old call's stragglers, RTP and RTCP
            phone.send(port, bytes([i]) * 160)
            phone.send_raw(port + 1, bytes([0x80, 200, 0, 6]) + bytes(24))
        c = wire(eng, phone)                     # the new call's phone: even the same address
        assert eng.local_port(c) == port
        eng.connect(c, b)
        eng.start(asyncio.get_running_loop(), lambda ev: None)
        assert far.recv(0.3) is None
        phone.send(port, b"\x77" * 160)
        got = far.recv()
        assert got is not None and got.payload == b"\x77" * 160
        st = eng.stats(c)
        assert (st["packets_in"], st["dropped"], st["rtcp_in"]) == (1, 0, 0)
        for sid in (b, c):
            eng.close_stream(sid)
    finally:
        eng.stop()
    assert_ports_free(lo, hi)


async def test_what_reaches_a_parked_pair_is_dropped_without_spinning(engines, peers) -> None:
    eut = engines(ports=4)
    eng = eut.engine
    phone, far = peers(2)
    a, b = wire(eng, phone), wire(eng, far)
    port = eng.local_port(a)
    eng.close_stream(a)
    rounds = eng.load()["rounds"]
    for i in range(20):
        phone.send(port, bytes([i]) * 160)
    await asyncio.sleep(0.2)
    # ~10 clock ticks and the datagrams' rounds; a parked socket left readable (level-
    # triggered epoll) would wake the thread without end
    assert eng.load()["rounds"] - rounds < 60
    c = wire(eng, phone)
    assert eng.local_port(c) == port and eng.stats(c)["dropped"] == 0
    eng.connect(c, b)
    assert far.recv(0.2) is None
    for sid in (b, c):
        eng.close_stream(sid)


async def test_a_reused_port_is_one_streams(engines, peers) -> None:
    eut = engines(ports=6)                       # three pairs
    eng = eut.engine
    ports = {eut.port_min, eut.port_min + 2, eut.port_min + 4}
    for _ in range(20):
        sids = [eng.open_stream() for _ in range(3)]
        assert {eng.local_port(s) for s in sids} == ports
        with pytest.raises(MediaError, match="no free RTP port"):
            eng.open_stream()
        for s in sids:
            eng.close_stream(s)
        assert eng.open_stream_count() == 0 and eng.load()["parked_pairs"] == 3
        assert all(bound_elsewhere(p) and bound_elsewhere(p + 1) for p in ports)
    pa, pb = peers(2)                            # each reused port: its own stream's traffic
    a, b = wire(eng, pa), wire(eng, pb)
    eng.connect(a, b)
    pa.send(eng.local_port(a), b"\x01" * 160)
    got = pb.recv()
    assert got is not None and got.payload == b"\x01" * 160
    assert eng.stats(a)["packets_in"] == 1 and eng.stats(b)["packets_in"] == 0
    for sid in (a, b):
        eng.close_stream(sid)


async def test_a_parked_pair_rests_while_other_ports_are_free(engines) -> None:
    eut = engines(ports=8)                       # four pairs
    eng = eut.engine
    a = eng.open_stream()
    first = eng.local_port(a)
    eng.close_stream(a)
    others = [eng.open_stream() for _ in range(3)]
    assert first not in {eng.local_port(s) for s in others}
    last = eng.open_stream()                     # the range is full: a young pair beats none
    assert eng.local_port(last) == first
    parked_first = eng.local_port(others[1])
    eng.close_stream(others[1])
    eng.close_stream(others[0])
    await asyncio.sleep(REST + 0.1)
    again = eng.open_stream()                    # rested: the pair parked longest
    assert eng.local_port(again) == parked_first
    for sid in (again, others[2], last):
        eng.close_stream(sid)


async def test_stop_closes_parked_pairs() -> None:
    lo, hi = engine_ports(8)
    eng = MediaEngine("127.0.0.1", lo, hi, rtp_timeout=0)
    eng.start(asyncio.get_running_loop(), lambda ev: None)
    sids = [eng.open_stream() for _ in range(4)]
    for sid in sids:
        eng.close_stream(sid)
    assert eng.load()["parked_pairs"] == 4 and bound_elsewhere(lo)
    eng.stop()
    assert_ports_free(lo, hi)


async def test_a_stream_moved_in_is_closed_not_parked() -> None:
    """Its port is of the other media thread's range: parked here, it would be a port of
    that range bound by the wrong engine."""
    lo, hi = engine_ports(8)
    pool = MediaPool("127.0.0.1", lo, hi, threads=2, rtp_timeout=0)
    pool.start(asyncio.get_running_loop(), lambda ev: None)
    try:
        a, b = pool.open_stream(group="one"), pool.open_stream(group="two")
        assert pool.engine_of(a) != pool.engine_of(b)
        moved = pool.local_port(b)
        pool.connect(a, b)                       # b moves to a's thread
        pool.close_stream(b)
        assert not bound_elsewhere(moved) and not bound_elsewhere(moved + 1)
        assert [ld["parked_pairs"] for ld in pool.loads()] == [0, 0]
        pool.close_stream(a)
    finally:
        pool.stop()
    assert_ports_free(lo, hi)
