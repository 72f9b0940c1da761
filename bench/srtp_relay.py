"""SRTP relay cost against plain RTP relay, measured in the same run (bench/test_bench_srtp.py).

How this works: `calls` two-party bridges in one engine (media thread pinned to its CPU, as
in engine_load.py). A sender socket plays every call's A side: it sends `packets` packets per
call, interleaved across calls, prepared before the clock starts (for SRTP: protected with
each call's own key by libsrtp through SrtpSession, so the sender's crypto is not timed).
The engine receives each on the call's A leg and relays it out of the B leg to a sink
socket that a thread drains. With `srtp`, both legs of every call are SRTP with their own
keys: each packet is authenticated and decrypted on the way in, then encrypted and
authenticated again on the way out, the whole cost of an SRTP-to-SRTP bridge. The figure
is the media thread's CPU time per packet received (its pthread CPU clock), so calls per
core compare as the inverse of the per-packet costs.
"""

from __future__ import annotations

import os
import socket
import struct
import threading
import time
from dataclasses import dataclass

import engine_load

from mediasrv._media import SRTP_SUITES, SrtpSession

SUITE = "AES_CM_128_HMAC_SHA1_80"


@dataclass
class RelayCost:
    packets_in: int
    packets_out: int
    auth_fail: int
    cpu: float

    @property
    def us_per_packet(self) -> float:
        return self.cpu / max(self.packets_in, 1) * 1e6


def _sink() -> tuple[socket.socket, threading.Event, threading.Thread]:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 8 << 20)
    sock.bind(("127.0.0.1", 0))
    sock.settimeout(0.05)
    stop = threading.Event()

    def drain() -> None:
        while not stop.is_set():
            try:
                sock.recv(4096)
            except TimeoutError:
                continue

    thread = threading.Thread(target=drain, daemon=True)
    thread.start()
    return sock, stop, thread


def relay(calls: int, packets: int, srtp: bool) -> RelayCost:
    frame = engine_load.voice_frame()
    src = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    src.bind(("127.0.0.1", 0))
    sink, stop, drainer = _sink()
    try:
        with engine_load._engine(2 * calls) as (eng, sids):
            per_call = []
            for call in range(calls):
                a = engine_load._stream(eng, sids, src.getsockname()[1])
                b = engine_load._stream(eng, sids, sink.getsockname()[1])
                eng.connect(a, b)
                sender = None
                if srtp:
                    n = SRTP_SUITES[SUITE][1]
                    a_rx, a_tx, b_rx, b_tx = (os.urandom(n) for _ in range(4))
                    eng.set_srtp(a, SUITE, rx_key=a_rx, tx_key=a_tx)
                    eng.set_srtp(b, SUITE, rx_key=b_rx, tx_key=b_tx)
                    sender = SrtpSession(SUITE, a_rx, False)
                pkts = []
                for i in range(packets):
                    pkt = struct.pack("!BBHII", 0x80, 0, i, 160 * i, 0x5000 + call) + frame
                    pkts.append(sender.protect(pkt) if sender else pkt)
                per_call.append((eng.local_port(a), pkts))
            a_sids = sids[0::2]
            ident = eng.media_thread_ids()[0]
            c0 = time.clock_gettime(time.pthread_getcpuclockid(ident))
            for i in range(packets):
                for port, pkts in per_call:
                    src.sendto(pkts[i], ("127.0.0.1", port))
            _settle(eng, a_sids)
            cpu = time.clock_gettime(time.pthread_getcpuclockid(ident)) - c0
            stats = [eng.stats(s) for s in sids]
            return RelayCost(sum(s["packets_in"] for s in stats),
                             sum(s["packets_out"] for s in stats),
                             sum(s["srtp_auth_fail"] for s in stats), cpu)
    finally:
        stop.set()
        drainer.join()
        sink.close()
        src.close()


def _settle(eng, sids: list[int], quiet: float = 0.05) -> None:
    """Wait until the engine has taken in everything that reached it."""
    last = -1
    while True:
        now = sum(eng.stats(s)["packets_in"] for s in sids)
        if now == last:
            return
        last = now
        time.sleep(quiet)
