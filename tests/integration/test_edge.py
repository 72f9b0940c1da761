"""The SIP edge against real sockets: malformed floods, slowloris, connection limits.

How this works: the harness's real server (UDP and TCP on loopback) gets every malformed kind of
`bench/sip_flood.py` from a raw socket; no 2xx may come back. Slow TCP (and TLS) clients are
real sockets that dribble bytes, or send nothing, and must be closed by the reaper after
`security.header_timeout`; a source's connections beyond `max_connections_per_source` are
closed at accept. The caller sources are 127.0.0.x addresses other than the phones' 127.0.0.1.
"""

from __future__ import annotations

import asyncio
import re
import socket
import time

import pytest

from bench.sip_flood import KINDS
from tests.integration.conftest import Harness, wait_until

STATUS = re.compile(rb"^SIP/2\.0 (\d{3}) ", re.M)
EDGE = '[security]\nheader_timeout = 1\nmax_connections_per_source = 3\n'


async def _answers_udp(h: Harness, src: str, datagrams: list[bytes]) -> list[int]:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind((src, 0))
    sock.setblocking(False)
    loop = asyncio.get_running_loop()
    for data in datagrams:
        await loop.sock_sendto(sock, data, h.sip_addr)
    codes: list[int] = []
    end = time.monotonic() + 1.0
    while time.monotonic() < end:
        try:
            data = await asyncio.wait_for(loop.sock_recv(sock, 65535), 0.2)
        except TimeoutError:
            continue
        codes += [int(m) for m in STATUS.findall(data[:12])]
    sock.close()
    return codes


async def test_no_malformed_kind_gets_a_2xx_over_udp(harness: Harness) -> None:
    target = f"{harness.sip_addr[0]}:{harness.sip_addr[1]}"
    datagrams = [build(target, "127.0.0.5:5999", f"flood-{kind}-1")
                 for kind, build in KINDS.items()]
    codes = await _answers_udp(harness, "127.0.0.5", datagrams)
    assert codes and all(c >= 400 for c in codes), codes  # the parser's 400s, 401s; no 2xx
    guard = harness.server.driver.guard
    assert guard.dropped["bad via host"] == 5 and guard.dropped["bad start line"] == 3


async def test_no_malformed_kind_gets_a_2xx_over_tcp(harness: Harness) -> None:
    target = f"{harness.sip_addr[0]}:{harness.sip_addr[1]}"
    codes: list[tuple[str, int]] = []
    for kind, build in KINDS.items():
        if kind in ("garbage", "short_body", "bad_content_length"):
            continue  # a stream cannot be resynchronised after these: the server closes it
        reader, writer = await asyncio.open_connection(*harness.sip_addr, local_addr=(
            "127.0.0.6", 0))
        host, port = writer.get_extra_info("sockname")[:2]
        src = f"{host}:{port}"
        writer.write(build(target, src, f"flood-{kind}-1").replace(b"/UDP ", b"/TCP "))
        try:
            data = await asyncio.wait_for(reader.read(65535), 1.0)
        except TimeoutError:
            data = b""
        codes += [(kind, int(m)) for m in STATUS.findall(data)]
        writer.close()
    assert all(c >= 400 for _, c in codes), codes


async def test_a_banned_source_is_ignored_and_others_are_served(harness: Harness) -> None:
    bad = KINDS["via_bad_host"](f"127.0.0.1:{harness.sip_addr[1]}", "127.0.0.7:5", "flood-v-1")
    assert await _answers_udp(harness, "127.0.0.7", [bad] * 60) == []
    guard = harness.server.driver.guard
    assert guard.is_banned("127.0.0.7", harness.server.driver.now)
    phone = await harness.phone("A", "101")  # 127.0.0.1 registers as before
    assert phone.port


async def _closed_after(reader: asyncio.StreamReader, timeout: float) -> float:
    t0 = time.monotonic()
    while await asyncio.wait_for(reader.read(100), timeout):
        pass
    return time.monotonic() - t0


@pytest.mark.site(EDGE)
async def test_slowloris_tcp_connection_is_closed(harness: Harness,
                                                  caplog: pytest.LogCaptureFixture) -> None:
    reader, writer = await asyncio.open_connection(*harness.sip_addr)
    request = b"OPTIONS sip:101@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/TCP 127.0.0.1:9;branch=z9"
    t0 = time.monotonic()

    async def dribble() -> None:
        for byte in request:
            writer.write(bytes([byte]))
            await asyncio.sleep(0.25)

    task = asyncio.create_task(dribble())
    await _closed_after(reader, 5)
    task.cancel()
    assert 0.9 < time.monotonic() - t0 < 3.5
    assert harness.server.driver.reaped["slow"] == 1
    assert "mediasrv: closed slow tcp connection from 127.0.0.1: no complete message in 1 s" \
        in caplog.text  # the form deploy/fail2ban's filter matches
    writer.close()


@pytest.mark.site(EDGE)
async def test_silent_connection_is_closed_and_a_quick_one_is_served(harness: Harness) -> None:
    silent_r, silent_w = await asyncio.open_connection(*harness.sip_addr)
    quick_r, quick_w = await asyncio.open_connection(*harness.sip_addr)
    quick_w.write(b"OPTIONS sip:101@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/TCP 127.0.0.1:9;branch="
                  b"z9hG4bKq\r\nFrom: <sip:x@127.0.0.1>;tag=1\r\nTo: <sip:101@127.0.0.1>\r\n"
                  b"Call-ID: quick\r\nCSeq: 1 OPTIONS\r\nMax-Forwards: 70\r\n"
                  b"Content-Length: 0\r\n\r\n")
    assert (await asyncio.wait_for(quick_r.readuntil(b"\r\n\r\n"), 3)).startswith(b"SIP/2.0 ")
    assert 0.9 < await _closed_after(silent_r, 5) < 3.5
    await asyncio.sleep(1.5)
    assert not quick_w.is_closing() and not quick_r.at_eof()  # it completed its message
    silent_w.close()
    quick_w.close()


@pytest.mark.site(EDGE)
async def test_connections_beyond_the_per_source_limit_are_closed(
        harness: Harness, caplog: pytest.LogCaptureFixture) -> None:
    conns = [await asyncio.open_connection(*harness.sip_addr, local_addr=("127.0.0.8", 0))
             for _ in range(4)]
    assert await asyncio.wait_for(conns[3][0].read(100), 2) == b""  # closed at once
    tcp = harness.server.driver.tcp[0]
    await wait_until(lambda: tcp.per_source["127.0.0.8"] == 3, 2, "three connections")
    assert tcp.refused["too many connections"] == 1
    assert "mediasrv: refused tcp connection from 127.0.0.8: 3 already open" in caplog.text
    other = await asyncio.open_connection(*harness.sip_addr, local_addr=("127.0.0.9", 0))
    await asyncio.sleep(0.2)
    assert tcp.per_source["127.0.0.9"] == 1
    for _, w in [*conns, other]:
        w.close()


@pytest.mark.site("[security]\nban_threshold = 5\n")
async def test_garbage_on_a_stream_closes_it_at_once_and_bans_after_the_threshold(
        harness: Harness, caplog: pytest.LogCaptureFixture) -> None:
    """Bytes that cannot begin a SIP message close the connection on their first read (the
    header timeout is 10 s here), each such connection is a strike, and the fifth bans."""
    target = f"{harness.sip_addr[0]}:{harness.sip_addr[1]}"
    probes = [KINDS["garbage"](target, "127.0.0.10:5", "flood-garbage-1"),
              b"GET / HTTP/1.1\r\nHost: pbx\r\n\r\n", b"\r\n\x00\x01\x02"]
    for i in range(5):
        reader, writer = await asyncio.open_connection(*harness.sip_addr,
                                                       local_addr=("127.0.0.10", 0))
        writer.write(probes[i % len(probes)])
        assert await _closed_after(reader, 2) < 0.5  # no answer, closed at once
        writer.close()
    driver = harness.server.driver
    assert driver.guard.is_banned("127.0.0.10", driver.now)
    assert "mediasrv: banned 127.0.0.10 for 600 s: 5 invalid requests in 10 s" in caplog.text
    assert driver.endpoint.stats["malformed_dropped"] >= 5
    reader, writer = await asyncio.open_connection(*harness.sip_addr,
                                                   local_addr=("127.0.0.10", 0))
    assert await asyncio.wait_for(reader.read(100), 2) == b""  # refused at accept now
    assert driver.tcp[0].refused["banned"] == 1
    writer.close()
