"""A real mediasrv (SIP over loopback UDP/TCP, the Cython engine) per test, on free ports.

The server runs in the test's own event loop; phones are `tests.peers.phone.TestPhone`s (an
independent UA) or real SIPp/baresip processes. Each test ends with a leak check: no leg,
stream, transaction or dialog may outlive the calls.
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest

from mediasrv.config import DEFAULT_CONFIG_DIR, DEFAULT_PLUGIN_DIR, load_config
from mediasrv.server import Server
from tests.parallel import server_rtp_ports
from tests.peers.baresip import Baresip
from tests.peers.phone import TestPhone


def free_port() -> int:
    """A port free for both UDP and TCP on 127.0.0.1."""
    while True:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as u:
            u.bind(("127.0.0.1", 0))
            port = u.getsockname()[1]
            with socket.socket() as t:
                try:
                    t.bind(("127.0.0.1", port))
                except OSError:
                    continue
            return port


MOH_HZ = [2200]


def moh_tone_site(tmp_path: Path) -> str:
    """A MoH class that is a pure 2200 Hz tone, so tests can tell hold music apart."""
    import numpy as np
    import soundfile as sf
    t = np.arange(8000 * 2) / 8000
    path = tmp_path / "moh-2200.wav"
    sf.write(path, (np.sin(2 * np.pi * 2200 * t) * 8000).astype(np.int16), 8000)
    return f'[moh.default]\nfiles = ["{path}"]\n'


def site_config(tmp_path: Path, extra: str = "", rtp: str = "") -> Path:
    """The test server's site directory; `rtp` holds extra lines of its `[rtp]` table."""
    port = free_port()
    rtp_min, rtp_max = server_rtp_ports()  # a window of this xdist worker's own
    site = tmp_path / "site"
    site.mkdir(exist_ok=True)
    (site / "99-test.toml").write_text(
        f'[sip]\nlisten = ["udp:127.0.0.1:{port}", "tcp:127.0.0.1:{port}"]\ntimer_t1 = 0.05\n'
        f'[rtp]\nports = [{rtp_min}, {rtp_max}]\n{rtp}'
        f'[storage]\npath = "{tmp_path}/db.sqlite3"\n[api]\nlisten = ""\n' + extra)
    return site


async def wait_until(predicate, timeout: float = 3.0, what: str = "condition") -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not predicate():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.02)


class Harness:
    def __init__(self, server: Server, tmp_path: Path) -> None:
        self.server = server
        self.tmp_path = tmp_path
        self.phones: list[TestPhone] = []

    @property
    def sip_addr(self) -> tuple[str, int]:
        lst = self.server.config.sip.listen[0]
        return (lst.host, lst.port)

    async def phone(self, name: str, ext: str, *, register: bool = True,
                    **kw) -> TestPhone:
        password = self.server.config.extensions[ext].password
        phone = TestPhone(name, ext, password, server=self.sip_addr, **kw)
        await phone.start()
        self.phones.append(phone)
        if register:
            resp = await phone.register()
            assert resp.status == 200, resp
        return phone

    def uri(self, ext: str) -> str:
        host, port = self.sip_addr
        return f"sip:{ext}@{host}:{port}"

    async def settle(self) -> None:
        """Wait until every call is gone and every transaction has finished."""
        b2bua = self.server.b2bua
        await wait_until(lambda: not b2bua.legs, 5, f"legs to end: {b2bua.legs}")
        endpoint = self.server.driver.endpoint
        await wait_until(lambda: endpoint.transaction_count() == 0, 10,
                         "SIP transactions to finish")


async def assert_nothing_leaked(h: Harness) -> None:
    """Every call, transaction, leg and engine stream of the test is gone."""
    await h.settle()
    report = h.server.b2bua.leak_report()
    assert all(v == 0 for v in report.values()), report
    assert h.server.engine.open_stream_count() == 0
    assert h.server.services.watched == 0, "code matchers of ended legs are kept"


@pytest.fixture
async def harness(tmp_path: Path, request: pytest.FixtureRequest) -> AsyncIterator[Harness]:
    marker = request.node.get_closest_marker("site")
    extra = marker.args[0] if marker else ""
    if request.node.get_closest_marker("moh_tone"):
        extra += moh_tone_site(tmp_path)
    rtp = request.node.get_closest_marker("rtp")
    site = site_config(tmp_path, extra, rtp.args[0] if rtp else "")
    config = load_config([DEFAULT_CONFIG_DIR, site], DEFAULT_PLUGIN_DIR)
    server = Server(config)
    await server.start()
    h = Harness(server, tmp_path)
    try:
        yield h
        await assert_nothing_leaked(h)
    finally:
        for phone in h.phones:
            await phone.close()
        engine = server.engine
        await server.stop()
        assert not engine.thread_alive()


MakeBaresip = Callable[..., Awaitable[Baresip]]


@pytest.fixture
async def baresip(harness: Harness) -> AsyncIterator[MakeBaresip]:
    """Start baresips registered as extensions of the harness's server; quit them afterwards.

    `make(ext, tone, codecs=None, kind=Baresip, **kw)`: the password is the shipped `demoEXT`;
    `codecs` (a baresip codec list) and any other keyword go to `kind` (Baresip or a subclass).
    """
    started: list[Baresip] = []

    async def make(ext: str, tone: str, codecs: str | None = None,
                   kind: type[Baresip] = Baresip, **kw) -> Baresip:
        if codecs is not None:
            kw["codecs"] = codecs
        phone = kind(ext, f"demo{ext}", tone=tone, registrar=harness.sip_addr, **kw)
        started.append(phone)
        await phone.start()
        await phone.wait_registered()
        return phone

    yield make
    for phone in started:
        await phone.close()
