"""Attended transfer end to end over SIP and RTP, proved by who hears whom at each step.

A (101) calls B (102); B is the transferer: it dials #4, hears the prompt, dials 103 (C),
and so on. Every phone sends its own identity tone.
"""

from __future__ import annotations

import pytest

from tests.integration.conftest import MOH_HZ, Harness, wait_until

pytestmark = [pytest.mark.asyncio, pytest.mark.moh_tone]


async def established(harness: Harness):
    a = await harness.phone("A", "101")
    b = await harness.phone("B", "102")
    c = await harness.phone("C", "103", answer=None)
    call = await a.call(harness.uri("102"))
    assert await call.wait_final() == 200
    await a.wait_hearing({"B"})
    await b.wait_hearing({"A"})
    return a, b, c, call, b.active_calls()[0]


async def test_complete_by_hanging_up_after_answer(harness: Harness) -> None:
    a, b, c, a_call, b_call = await established(harness)
    await b_call.send_dtmf("#4")
    await wait_until(lambda: a.hears_freqs(MOH_HZ) and not a.hears(), 3, "A on hold music")
    await b_call.send_dtmf("103#")
    c_call = await c.next_incoming()
    await c_call.answer()
    await b.wait_hearing({"C"})
    await c.wait_hearing({"B"})
    assert a.hears_freqs(MOH_HZ) and not a.hears()
    await b_call.hangup()
    await a.wait_hearing({"C"})
    await c.wait_hearing({"A"})
    await a_call.hangup()
    await c_call.wait_state("terminated")
