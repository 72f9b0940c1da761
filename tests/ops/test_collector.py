"""The garbage collector as `mediasrv run` leaves it: start-up heap frozen, young threshold raised.

The young threshold is what keeps full collections (and their pauses) rare at hundreds of
calls a second (mediasrv/stalls.py, bench.ser); these tests pin that `serve()` applies it.
"""

from __future__ import annotations

import asyncio
import gc
from collections.abc import Iterator
from pathlib import Path

import pytest

from mediasrv.config import DEFAULT_CONFIG_DIR, DEFAULT_PLUGIN_DIR, load_config
from mediasrv.server import Server
from mediasrv.stalls import YOUNG_THRESHOLD, settle_collector
from tests.ops.conftest import ops_site


@pytest.fixture
def collector_restored() -> Iterator[None]:
    thresholds = gc.get_threshold()
    yield
    gc.unfreeze()
    gc.set_threshold(*thresholds)


def test_settle_collector_raises_only_the_young_threshold(collector_restored: None) -> None:
    gc.set_threshold(700, 10, 10)
    gc.unfreeze()
    settle_collector()
    assert gc.get_threshold() == (YOUNG_THRESHOLD, 10, 10)
    assert gc.get_freeze_count() > 0


async def test_serve_settles_the_collector_once_up(tmp_path: Path,
                                                   collector_restored: None) -> None:
    gc.set_threshold(700, 10, 10)
    site, _port = ops_site(tmp_path, "")
    server = Server(load_config([DEFAULT_CONFIG_DIR, site], DEFAULT_PLUGIN_DIR))
    serving = asyncio.create_task(server.serve())
    for _ in range(500):
        if server.ready:
            break
        await asyncio.sleep(0.01)
    try:
        assert server.ready, "the server did not come up"
        assert gc.get_threshold()[0] == YOUNG_THRESHOLD
    finally:
        server.request_stop()
        assert await asyncio.wait_for(serving, 10) == 0
