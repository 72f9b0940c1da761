"""Behind a proxy, in process: calls to extensions not registered here go to the outbound
proxy; SIGTERM drains (503 to new calls and OPTIONS, the existing call goes on, then stop).
The whole topology with Kamailio is `test_kamailio.py`."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from mediasrv.config import DEFAULT_CONFIG_DIR, DEFAULT_PLUGIN_DIR, load_config
from mediasrv.server import Server
from tests.integration.conftest import Harness, assert_nothing_leaked, site_config, wait_until
from tests.peers.phone import TestPhone

pytestmark = pytest.mark.asyncio


@pytest.fixture
async def proxied(tmp_path: Path) -> AsyncIterator[tuple[Harness, TestPhone]]:
    """A server whose outbound proxy is a phone on 127.0.0.2 answering as extension 103."""
    proxy = await TestPhone("C", "103", host="127.0.0.2").start()
    site = site_config(tmp_path, "")
    text = (site / "99-test.toml").read_text().replace(
        "timer_t1 = 0.05\n", f'timer_t1 = 0.05\noutbound_proxy = "sip:127.0.0.2:{proxy.port}"\n')
    (site / "99-test.toml").write_text(text)
    server = Server(load_config([DEFAULT_CONFIG_DIR, site], DEFAULT_PLUGIN_DIR))
    await server.start()
    h = Harness(server, tmp_path)
    try:
        yield h, proxy
        await assert_nothing_leaked(h)
    finally:
        await proxy.close()
        for phone in h.phones:
            await phone.close()
        await server.stop()


async def test_unregistered_extension_is_called_through_the_outbound_proxy(proxied) -> None:
    h, proxy = proxied
    a = await h.phone("A", "101")
    call = await a.call(h.uri("103"))
    assert await call.wait_final() == 200
    incoming = proxy.active_calls()[0]
    assert incoming.invite.uri == f"sip:103@127.0.0.2:{proxy.port}"
    await a.wait_hearing({"C"})
    await proxy.wait_hearing({"A"})
    await call.hangup()
    await wait_until(lambda: not proxy.active_calls(), 3, "the proxied leg to end")


async def test_a_registered_extension_is_still_called_directly(proxied) -> None:
    h, proxy = proxied
    a = await h.phone("A", "101")
    b = await h.phone("B", "102")
    call = await a.call(h.uri("102"))
    assert await call.wait_final() == 200
    await b.wait_hearing({"A"})
    assert not proxy.calls
    await call.hangup()


async def test_drain_refuses_new_calls_and_lets_the_call_finish(harness: Harness) -> None:
    a = await harness.phone("A", "101")
    b = await harness.phone("B", "102")
    c = await harness.phone("C", "103")
    call = await a.call(harness.uri("102"))
    assert await call.wait_final() == 200
    harness.server.drain()
    options = await c.options(harness.uri("102"))
    assert options.status == 503 and options.get("Retry-After") == "5"
    refused = await c.call(harness.uri("102"))
    assert await refused.wait_final() == 503
    await a.wait_hearing({"B"})  # the existing call still talks
    await b.wait_hearing({"A"})
    assert not harness.server._stop.is_set()
    await call.hangup()
    await wait_until(harness.server._stop.is_set, 3, "the drained server to stop")


async def test_drain_with_no_call_stops_at_once(harness: Harness) -> None:
    harness.server.drain()
    assert harness.server._stop.is_set()
