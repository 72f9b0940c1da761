"""A pause of the loop under a burst of SIP over UDP loses nothing (issue 13).

The server's loop cannot read while it collects garbage or runs a long callback; what arrives
meanwhile waits in the SIP socket's receive buffer. The test holds the loop (it sends without
yielding) while 600 OPTIONS arrive, ~1.5 MB of kernel memory on loopback: with the shipped
`sip.udp_receive_buffer` every one is answered; with the kernel's default buffer some are
dropped, and `mediasrv_sip_udp_receive_drops` says how many.
"""

from __future__ import annotations

import asyncio
import re
import socket
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from mediasrv.config import DEFAULT_CONFIG_DIR, DEFAULT_PLUGIN_DIR, load_config
from mediasrv.server import Server
from mediasrv.transport.udp import ask_receive_buffer
from tests.ops.conftest import OpsHarness, ops_site

BURST = 600
NO_LIMIT = "[security]\nrate_limit = 0\nban_threshold = 0\n"  # one source sends the whole burst
OPTIONS = ("OPTIONS sip:mediasrv@127.0.0.1 SIP/2.0\r\n"
           "Via: SIP/2.0/UDP 127.0.0.1:{port};branch=z9hG4bK-burst-{n}\r\n"
           "From: <sip:burst@127.0.0.1>;tag=b{n}\r\nTo: <sip:mediasrv@127.0.0.1>\r\n"
           "Call-ID: burst-{n}@127.0.0.1\r\nCSeq: 1 OPTIONS\r\nMax-Forwards: 70\r\n"
           "Content-Length: 0\r\n\r\n")


async def _burst_while_the_loop_waits(ops: OpsHarness) -> tuple[set[str], int]:
    """Sends BURST requests without letting the loop turn; the Call-IDs answered, the drops."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    ask_receive_buffer(sock, 8 * 1024 * 1024)  # the client must not be where they are lost
    sock.bind(("127.0.0.1", 0))
    sock.setblocking(False)
    port, loop = sock.getsockname()[1], asyncio.get_running_loop()
    answered: set[str] = set()
    try:
        for n in range(BURST):  # no await in here: the server's loop stands still
            sock.sendto(OPTIONS.format(port=port, n=n).encode(), ops.sip_addr)
        while len(answered) < BURST:
            try:
                data = await asyncio.wait_for(loop.sock_recv(sock, 65535), 2.0)
            except TimeoutError:
                break
            found = re.search(rb"\r\nCall-ID: (burst-\d+)@", data)
            assert data.startswith(b"SIP/2.0 200") and found, data[:200]
            answered.add(found.group(1).decode())
    finally:
        sock.close()
    text = (await ops.api.get("/metrics", token=None)).body.decode()
    host, sip_port = ops.sip_addr
    label = re.escape(f'{{listener="{host}:{sip_port}"}}')
    drops = re.search(rf"mediasrv_sip_udp_receive_drops_total{label} (\d+)", text)
    assert drops, "the drops metric is missing"
    return answered, int(drops.group(1))


@pytest.fixture
async def server_with(tmp_path: Path, request: pytest.FixtureRequest
                      ) -> AsyncIterator[OpsHarness]:
    """A server whose site adds the `[sip]` lines the test is parametrised with."""
    site, _port = ops_site(tmp_path, NO_LIMIT)
    (site / "99-zzz-buffer.toml").write_text(f"[sip]\n{request.param}")
    server = Server(load_config([DEFAULT_CONFIG_DIR, site], DEFAULT_PLUGIN_DIR))
    await server.start()
    try:
        yield OpsHarness(server, tmp_path)
    finally:
        await server.stop()


@pytest.mark.parametrize("server_with", [""], indirect=True, ids=["shipped"])
async def test_the_shipped_buffer_carries_a_burst_through_a_pause(
        server_with: OpsHarness) -> None:
    answered, drops = await _burst_while_the_loop_waits(server_with)
    assert drops == 0
    assert len(answered) == BURST


@pytest.mark.parametrize("server_with", ["udp_receive_buffer = 0\n"], indirect=True,
                         ids=["kernel-default"])
async def test_the_kernels_default_buffer_drops_and_the_metric_counts_it(
        server_with: OpsHarness) -> None:
    answered, drops = await _burst_while_the_loop_waits(server_with)
    assert drops > 0
    assert len(answered) + drops == BURST


async def test_a_buffer_the_kernel_caps_is_reported_at_start_up(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    # As a service user without CAP_NET_ADMIN on a stock kernel: SO_RCVBUF alone, capped.
    def capped(sock: socket.socket, size: int) -> None:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 64 * 1024)
    monkeypatch.setattr("mediasrv.transport.udp.ask_receive_buffer", capped)
    site, _port = ops_site(tmp_path, NO_LIMIT)
    server = Server(load_config([DEFAULT_CONFIG_DIR, site], DEFAULT_PLUGIN_DIR))
    with caplog.at_level("WARNING", logger="mediasrv.server"):
        await server.start()
    try:
        [warning] = [r.getMessage() for r in caplog.records if "receive buffer" in r.getMessage()]
        assert "granted a receive buffer of 64 KiB, not the 4096 KiB of sip.udp_receive_buffer" \
            in warning
        assert "net.core.rmem_max" in warning and warning.startswith("udp:127.0.0.1:")
    finally:
        await server.stop()
