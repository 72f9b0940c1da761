"""The SIP edge's ban list through the operations API and /metrics (issue 12)."""

from __future__ import annotations

import asyncio
import re
import socket

import pytest

from bench.sip_flood import KINDS
from tests.ops.conftest import OpsHarness
from tests.ops.test_openapi import check

pytestmark = pytest.mark.site("[security]\nban_threshold = 20\nban_time = 300\n")

OPTIONS = (b"OPTIONS sip:101@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.11:%d;branch=z9hG4bK%d"
           b"\r\nFrom: <sip:x@127.0.0.11>;tag=1\r\nTo: <sip:101@127.0.0.1>\r\nCall-ID: ban-%d\r\n"
           b"CSeq: 1 OPTIONS\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n")


async def _options_answered(sock: socket.socket, ops: OpsHarness, n: int) -> bool:
    loop = asyncio.get_running_loop()
    await loop.sock_sendto(sock, OPTIONS % (sock.getsockname()[1], n, n), ops.sip_addr)
    try:
        return (await asyncio.wait_for(loop.sock_recv(sock, 65535), 1.0)).startswith(b"SIP/2.0")
    except TimeoutError:
        return False


async def test_ban_is_listed_exported_and_lifted(ops: OpsHarness) -> None:
    doc = (await ops.api.get("/openapi.json", token=None)).json()
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.11", 0))
    sock.setblocking(False)
    try:
        assert await _options_answered(sock, ops, 0)
        assert await check(ops, doc, "get", "/v1/bans", "/v1/bans") == []
        bad = KINDS["missing_call_id"]("127.0.0.1:5060", "127.0.0.11:5", "flood-m-1")
        for _ in range(25):
            sock.sendto(bad, ops.sip_addr)
        await asyncio.sleep(0.3)
        [ban] = await check(ops, doc, "get", "/v1/bans", "/v1/bans")
        assert ban["address"] == "127.0.0.11" and 295 < ban["expires_in"] <= 300
        assert ban["reason"] == "20 invalid requests in 10 s"
        assert not await _options_answered(sock, ops, 1)  # banned: a valid request too

        text = (await ops.api.get("/metrics", token=None)).body.decode()
        assert "mediasrv_sip_banned_sources 1.0" in text
        assert re.search(r'mediasrv_sip_ban_expires_in_seconds\{address="127.0.0.11"\} 29\d', text)
        assert "mediasrv_sip_bans_total 1.0" in text
        assert 'mediasrv_sip_dropped_messages_total{reason="no call-id header"} 20.0' in text
        assert re.search(r'mediasrv_sip_dropped_messages_total\{reason="banned"\} [1-9]', text)
        host, port = ops.sip_addr
        assert f'mediasrv_sip_udp_receive_drops_total{{listener="{host}:{port}"}} 0.0' in text

        lifted = await check(ops, doc, "delete", "/v1/bans/127.0.0.11", "/v1/bans/{address}")
        assert lifted == {"address": "127.0.0.11", "unbanned": True}
        await check(ops, doc, "delete", "/v1/bans/127.0.0.11", "/v1/bans/{address}")  # 404
        assert await _options_answered(sock, ops, 2)
        assert (await ops.api.get("/v1/bans", token=None)).status == 401
    finally:
        sock.close()


async def test_reload_applies_new_edge_limits(ops: OpsHarness) -> None:
    (ops.tmp_path / "site" / "99-zz-edge.toml").write_text(
        "[security]\nban_threshold = 5\nheader_timeout = 2\nmax_connections_per_source = 4\n")
    reply = await ops.api.request("POST", "/v1/reload")
    assert reply.status == 200 and reply.json()["reloaded"], reply.body
    driver = ops.server.driver
    assert (driver.guard.config.ban_threshold, driver.header_timeout) == (5, 2)
    assert all(lst.max_per_source == 4 for lst in driver.tcp)
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.12", 0))
    try:
        bad = KINDS["garbage"]("127.0.0.1:5060", "127.0.0.12:5", "flood-g-1")
        for _ in range(5):
            sock.sendto(bad, ops.sip_addr)
        await asyncio.sleep(0.3)
        assert driver.guard.is_banned("127.0.0.12", driver.now)
    finally:
        sock.close()
