"""Calls between extensions through the B2BUA, proved by audio: each phone sends its own tone."""

from __future__ import annotations

import pytest

from tests.integration.conftest import Harness, wait_until

pytestmark = pytest.mark.asyncio


async def test_register_and_call_with_audio_both_ways(harness: Harness) -> None:
    a = await harness.phone("A", "101")
    b = await harness.phone("B", "102")
    call = await a.call(harness.uri("102"))
    assert await call.wait_final() == 200
    await a.wait_hearing({"B"})
    await b.wait_hearing({"A"})
    await call.hangup()
    await wait_until(lambda: not b.active_calls(), 3, "B's call to end")
