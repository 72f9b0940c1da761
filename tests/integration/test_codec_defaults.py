"""The shipped codec order (conf.d: G722, PCMU, PCMA) as phones meet it, proved by audio.

How this works: no site override of `[rtp] codecs` or of any extension's `codecs`: what a
fresh install does. Each phone is our test phone offering its own codec list (G.722 by
spandsp, Opus by libopus: tests/peers/codecs.py) and sending its identity tone; both must
hear each other, and the legs' codecs show what was negotiated: an answer keeps the
offerer's preference among ours, our offer to the callee puts the caller's codec first, so
an HD desk phone calling another gets G.722 relayed, a G.711 phone keeps G.711 (relayed, not
transcoded) even towards an HD phone, and a softphone offering Opus first gets G.722.
"""

from __future__ import annotations

import pytest

from tests.integration.conftest import Harness, wait_until

pytestmark = [pytest.mark.asyncio]


@pytest.mark.parametrize(("a_codecs", "b_codecs", "expected"), [
    (["G722", "PCMU"], ["G722", "PCMU", "PCMA"], ("G722", "G722")),       # desk phones: HD
    (["PCMU", "PCMA"], ["G722", "PCMU"], ("PCMU", "PCMU")),               # G.711 caller
    (["OPUS", "G722", "PCMU"], ["G722", "PCMU"], ("G722", "G722")),       # softphone
    (["G722", "PCMU"], ["PCMA"], ("G722", "PCMA")),                       # transcoded
])
async def test_shipped_codec_order(harness: Harness, a_codecs: list[str], b_codecs: list[str],
                                   expected: tuple[str, str]) -> None:
    assert harness.server.config.rtp.codecs == ("G722", "PCMU", "PCMA")
    a = await harness.phone("A", "101", codecs=a_codecs)
    b = await harness.phone("B", "102", codecs=b_codecs)
    a_call = await a.call(harness.uri("102"))
    assert await a_call.wait_final() == 200
    codecs = {leg.number: leg.media.codec for leg in harness.server.b2bua.legs}
    assert (codecs["101"], codecs["102"]) == expected, codecs
    await a.wait_hearing({"B"})
    await b.wait_hearing({"A"})
    await a_call.hangup()
    await wait_until(lambda: not harness.server.b2bua.legs, 3, "both legs to end")
