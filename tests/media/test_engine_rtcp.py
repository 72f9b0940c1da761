"""RTCP reports from the engine (RFC 3550 §6): SR or RR with a report block, SDES CNAME,
LSR/DLSR from the remote's last SR, nothing from an idle stream. Real UDP on 127.0.0.1."""

from __future__ import annotations

import asyncio
import socket
import struct
import time
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from rtp_peer import RtpPeer, wire

ULAW_FRAME = bytes(range(0, 160))


@dataclass
class Report:
    """The parts of one compound RTCP packet the tests look at."""

    pt: int                                  # 200 SR, 201 RR
    ssrc: int
    sender: tuple[int, int, int, int] | None  # NTP, RTP timestamp, packets, octets
    blocks: list[tuple[int, int, int, int, int, int, int]]  # ssrc, fraction, lost, ext max,
    cname: bytes                                            # jitter, LSR, DLSR


def parse_report(data: bytes) -> Report:
    """Our own reading of RFC 3550 §6.4.1, §6.4.2, §6.5 (header lengths checked)."""
    first, second = data[0], data[1]
    assert first >> 6 == 2 and second in (200, 201)
    length = 4 * (struct.unpack_from("!H", data, 2)[0] + 1)
    ssrc = struct.unpack_from("!I", data, 4)[0]
    off, sender = 8, None
    if second == 200:
        ntp, rtp_ts, packets, octets = struct.unpack_from("!QIII", data, 8)
        sender, off = (ntp, rtp_ts, packets, octets), 28
    blocks = []
    for _ in range(first & 0x1F):
        src, word, ext_max, jitter, lsr, dlsr = struct.unpack_from("!IIIIII", data, off)
        blocks.append((src, word >> 24, word & 0xFFFFFF, ext_max, jitter, lsr, dlsr))
        off += 24
    assert off == length
    sdes = data[length:]
    assert sdes[0] == 0x81 and sdes[1] == 202 and len(sdes) == 4 * (sdes[3] + 1)
    assert struct.unpack_from("!I", sdes, 4)[0] == ssrc and sdes[8] == 1   # CNAME item
    return Report(second, ssrc, sender, blocks, sdes[10:10 + sdes[9]])


@pytest.fixture
def rtcp_peer(peers) -> Iterator[tuple[RtpPeer, socket.socket]]:
    """An RtpPeer on an even port with its port + 1 (where RTCP goes) held by us too."""
    for _ in range(100):
        (peer,) = peers(1)
        if peer.port % 2:
            continue
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        try:
            sock.bind(("127.0.0.1", peer.port + 1))
        except OSError:
            sock.close()
            continue
        yield peer, sock
        sock.close()
        return
    raise AssertionError("no even port with a free odd neighbour")


async def next_report(sock: socket.socket, timeout: float = 2.0) -> Report:
    loop = asyncio.get_running_loop()
    sock.setblocking(False)
    data = await asyncio.wait_for(loop.sock_recv(sock, 2048), timeout)
    return parse_report(data)


async def test_sender_report_with_a_block_on_what_was_received(engines, rtcp_peer) -> None:
    peer, rtcp = rtcp_peer
    eng = engines(rtcp_interval=0.4).engine     # first report after 0.1-0.3 s
    a = wire(eng, peer)
    eng.play_silence(a)
    port = eng.local_port(a)
    for i in range(50):                         # 45 sent, 5 lost on the way
        if i not in (10, 20, 30, 31, 40):
            peer.send(port, ULAW_FRAME)
        else:
            peer.seq, peer.ts = peer.seq + 1, peer.ts + 160
    last_seq = peer.seq - 1
    heard = peer.recv()
    assert heard is not None
    first = await next_report(rtcp)
    assert first.pt == 200 and first.ssrc == heard.ssrc
    assert first.cname.startswith(b"mediasrv-") and len(first.cname) == 33
    ntp, rtp_ts, packets, octets = first.sender
    assert abs((ntp >> 32) - 2208988800 - time.time()) < 2
    assert 0 < packets <= eng.stats(a)["packets_out"] and octets == 160 * packets
    assert (rtp_ts - heard.ts) % 2**32 < 8000 * 2          # the stream's own clock, ahead
    ((src, fraction, lost, ext_max, jitter, lsr, dlsr),) = first.blocks
    assert (src, lost, ext_max, lsr, dlsr) == (peer.ssrc, 5, last_seq, 0, 0)
    assert fraction == 5 * 256 // 50
    assert abs(jitter - eng.stats(a)["jitter"]) <= 1
    second = await next_report(rtcp)            # nothing received since: 0 % over the interval
    assert second.pt == 200 and second.blocks[0][1:4] == (0, 5, last_seq)
    assert second.sender[2] > packets and second.cname == first.cname
    assert eng.stats(a)["rtcp_out"] >= 2
    eng.close_stream(a)


async def test_lsr_and_dlsr_answer_the_remotes_sender_report(engines, rtcp_peer) -> None:
    peer, rtcp = rtcp_peer
    eng = engines(rtcp_interval=0.4).engine
    a = wire(eng, peer)                         # feed none: it only receives, so RR
    port = eng.local_port(a)
    peer.send(port, ULAW_FRAME)
    sr = struct.pack("!BBHIQIII", 0x80, 200, 6, peer.ssrc, 0x1122334455667788, 0, 1, 160)
    rtcp.sendto(sr, ("127.0.0.1", port + 1))
    sent_at = time.monotonic()
    report = await next_report(rtcp)
    waited = time.monotonic() - sent_at
    assert report.pt == 201 and report.sender is None
    ((src, _fraction, lost, _ext, _jitter, lsr, dlsr),) = report.blocks
    assert (src, lost, lsr) == (peer.ssrc, 0, 0x33445566)    # middle 32 bits of its NTP
    assert 0 < dlsr / 65536 <= waited + 0.05
    assert eng.stats(a)["rtcp_in"] == 1
    eng.close_stream(a)


async def test_a_stream_that_neither_sends_nor_receives_reports_nothing(engines,
                                                                        rtcp_peer) -> None:
    peer, rtcp = rtcp_peer
    eng = engines(rtcp_interval=0.2).engine
    a = wire(eng, peer)
    with pytest.raises(TimeoutError):
        await next_report(rtcp, timeout=0.6)
    assert eng.stats(a)["rtcp_out"] == 0
    eng.close_stream(a)
