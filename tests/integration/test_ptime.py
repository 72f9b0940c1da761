"""A phone packetising at 10, 30 or 40 ms bridged to a 20 ms leg (the engine's ptime).

How this works: A (101) sends its identity tone at the ptime under test, B (102) at 20 ms;
each must hear the other's tone, and each received stream must be playable by timestamp:
every packet's timestamp advances by exactly the audio the one before it held (a phone's
jitter buffer places audio by timestamp, so 30 ms of audio stamped 20 ms apart would
overlap). Same codec on both legs: packets are relayed as sent (a 30 ms packet stays
30 ms). Different codecs: the engine decodes each packet and re-frames the audio into its
own 20 ms frames before encoding (engine_codec.pyx), so e.g. Opus gets a valid frame size
(30 ms is not one) and PCMU gets its 160-sample packets.
"""

from __future__ import annotations

import asyncio
from itertools import pairwise

import pytest

from tests.integration.conftest import Harness, wait_until

WIDE = '["G722", "opus", "PCMU", "PCMA"]'
pytestmark = [pytest.mark.asyncio,
              pytest.mark.site(f"[extensions.101]\ncodecs = {WIDE}\n"
                               f"[extensions.102]\ncodecs = {WIDE}\n")]


def steady(timeline: list[tuple[int, int]], last: int = 40) -> float:
    """Fraction of the last packets whose timestamp follows on from the one before."""
    tail = timeline[-last - 1:]
    pairs = list(pairwise(tail))
    good = sum((t1 - t0) & 0xFFFFFFFF == d0 for (t0, d0), (t1, _) in pairs)
    return good / max(1, len(pairs))


@pytest.mark.parametrize(("a_codec", "ptime", "b_codec"), [
    ("PCMU", 30, "PCMU"), ("PCMU", 30, "G722"), ("PCMU", 30, "OPUS"), ("PCMU", 10, "OPUS"),
    ("G722", 30, "PCMU"), ("G722", 40, "OPUS"), ("OPUS", 40, "PCMU"), ("OPUS", 10, "G722"),
    ("PCMU", 40, "G722"),
])
async def test_other_ptime_bridged_to_20ms(harness: Harness, a_codec: str, ptime: int,
                                           b_codec: str) -> None:
    a = await harness.phone("A", "101", codecs=[a_codec], ptime=ptime)
    b = await harness.phone("B", "102", codecs=[b_codec])
    a_call = await a.call(harness.uri("102"))
    assert await a_call.wait_final() == 200
    b_call = b.active_calls()[0]
    codecs = {leg.number: leg.media.codec for leg in harness.server.b2bua.legs}
    assert codecs == {"101": a_codec, "102": b_codec}, codecs
    await a.wait_hearing({"B"})
    await b.wait_hearing({"A"})
    await asyncio.sleep(1.0)
    assert a.hears() == {"B"} and b.hears() == {"A"}
    assert steady(b_call.rtp.timeline) > 0.95, b_call.rtp.timeline[-10:]
    assert steady(a_call.rtp.timeline) > 0.95, a_call.rtp.timeline[-10:]
    await a_call.hangup()
    await wait_until(lambda: not harness.server.b2bua.legs, 3, "both legs to end")
