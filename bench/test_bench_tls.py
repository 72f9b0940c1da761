"""REGISTER rate over TLS against TCP in the same run (issue 12).

How this works: a real server process (`bench/sip_flood.ServerProcess`) listens on TCP and
TLS (a self-signed pair from `mediasrv.tlscert`); `CLIENTS` StreamClients per transport each
open one connection (the TLS handshake is part of the measure) and register `ROUNDS` times in
a row with digest authentication (401 then 200: two transactions per registration). Measured:
registrations per second of wall time and the server's CPU seconds per registration, for TCP
and TLS, one after the other. The rate limit is off for this one source (it is a load test).
Gate: TLS keeps at least 0.3x the TCP rate (a loose gate; the printed figures are the result).
"""

from __future__ import annotations

import asyncio
import sys
import tempfile
import time
from pathlib import Path

import pytest

from bench.sip_flood import ROOT, ServerProcess, free_port, thread_cpu
from mediasrv.tlscert import make_self_signed

CLIENTS, ROUNDS = 10, 40
pytestmark = pytest.mark.peer


async def _register_all(port: int, transport: str, ca: str, pid: int) -> tuple[float, float]:
    sys.path.insert(0, str(ROOT))
    from tests.peers.stream_client import StreamClient, tls_client_context

    ctx = tls_client_context(ca) if transport == "tls" else None
    clients = [StreamClient(f"{100 + i}", f"demo{100 + i}", ("127.0.0.1", port),
                            transport=transport, ssl_context=ctx) for i in range(CLIENTS)]

    async def one(client: StreamClient) -> None:
        await client.connect()
        for _ in range(ROUNDS):
            resp = await client.register()
            assert resp.status == 200, resp
        await client.close()

    cpu0, t0 = thread_cpu(pid), time.monotonic()
    await asyncio.gather(*(one(c) for c in clients))
    wall, cpu = time.monotonic() - t0, thread_cpu(pid) - cpu0
    n = CLIENTS * ROUNDS
    return n / wall, cpu / n


async def _wait_ready(port: int) -> None:
    for _ in range(100):
        try:
            _, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.close()
            return
        except OSError:
            await asyncio.sleep(0.1)
    raise AssertionError("the server did not start")


def test_tls_register_rate_against_tcp() -> None:
    with tempfile.TemporaryDirectory(prefix="bench-tls-") as tmp:
        cert, key = Path(tmp, "cert.pem"), Path(tmp, "key.pem")
        make_self_signed(cert, key, ["localhost", "127.0.0.1"])
        tls_port = free_port()
        server = ServerProcess(Path(tmp), extra="[security]\nrate_limit = 0\n"
                               f'[tls]\ncert = "{cert}"\nkey = "{key}"\n',
                               listen_extra=(f"tls:127.0.0.1:{tls_port}",))
        try:
            asyncio.run(_wait_ready(tls_port))
            pid = server.proc.pid
            tcp_rate, tcp_cpu = asyncio.run(_register_all(server.port, "tcp", str(cert), pid))
            tls_rate, tls_cpu = asyncio.run(_register_all(tls_port, "tls", str(cert), pid))
        finally:
            log = server.stop()
    ratio = tls_rate / tcp_rate
    print(f"\nREGISTER (digest, {CLIENTS} connections x {ROUNDS}): TCP {tcp_rate:.0f}/s "
          f"({tcp_cpu * 1e3:.2f} ms server CPU each), TLS {tls_rate:.0f}/s "
          f"({tls_cpu * 1e3:.2f} ms each): TLS = {ratio:.2f}x TCP (gate 0.3x)")
    assert ratio >= 0.3, log[-2000:]
