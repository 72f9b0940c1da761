"""Fixtures of the engine tests: engines with a leak check, RTP test peers closed after use."""

from __future__ import annotations

import pytest
from rtp_peer import RtpPeer, engine_factory


@pytest.fixture
async def engines(request: pytest.FixtureRequest):
    async with engine_factory(request.node.name) as make:
        yield make


@pytest.fixture
def peers():
    made: list[RtpPeer] = []

    def make(n: int) -> list[RtpPeer]:
        made.extend(RtpPeer() for _ in range(n))
        return made[-n:]

    yield make
    for p in made:
        p.close()
