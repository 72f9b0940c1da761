"""DTMF on wideband legs: in-band tones and RFC 4733 events from a G.722 and an Opus phone.

How this works: B (102) is our test phone speaking only G.722 or only Opus, its audio made at
16 kHz and encoded by spandsp / libopus (tests/peers/codecs.py, independent of mediasrv's
codecs). A (101) calls B over PCMU, so the engine decodes B's packets anyway (transcoding);
B then runs an attended transfer with digits: #4 (A hears MoH), 103# (C rings and answers),
hang up (A and C talk). In-band digits are 100 ms tone pairs at -14 dBm0 per tone inside B's
wideband audio; the engine detects them after its 16 -> 8 kHz decimation (engine_codec.pyx).
A phone that negotiates telephone-event on a wideband leg is trusted to send events in the
"auto" mode (engine_media.pyx: eng_dtmf_inband_on), so the in-band cases use a phone that
offers no telephone-event, or an extension set to `dtmf = "inband"`.
"""

from __future__ import annotations

import pytest

from tests.integration.conftest import MOH_HZ, Harness, wait_until

WIDE = '["G722", "opus", "PCMU", "PCMA"]'
pytestmark = [pytest.mark.asyncio, pytest.mark.moh_tone]


async def transfer_by_digits(harness: Harness, codec: str, mode: str, **b_kw) -> None:
    a = await harness.phone("A", "101")
    b = await harness.phone("B", "102", codecs=[codec], **b_kw)
    c = await harness.phone("C", "103", answer=None)
    a_call = await a.call(harness.uri("102"))
    assert await a_call.wait_final() == 200
    b_call = b.active_calls()[0]
    await a.wait_hearing({"B"})
    await b.wait_hearing({"A"})
    codecs = {leg.number: leg.media.codec for leg in harness.server.b2bua.legs}
    assert codecs == {"101": "PCMU", "102": codec}, codecs
    await b_call.send_dtmf("#4", mode=mode)
    await wait_until(lambda: a.hears_freqs(MOH_HZ) and not a.hears(), 3, "A to hear only MoH")
    await b_call.send_dtmf("103#", mode=mode)
    c_call = await c.next_incoming()
    await c_call.answer()
    await b.wait_hearing({"C"})
    await c.wait_hearing({"B"})
    await b_call.hangup()
    await a.wait_hearing({"C"})
    await c.wait_hearing({"A"})
    await a_call.hangup()
    await wait_until(lambda: not harness.server.b2bua.legs, 3, "every leg to end")


@pytest.mark.site(f'[extensions.102]\ncodecs = {WIDE}\n')
@pytest.mark.parametrize("codec", ["G722", "OPUS"])
async def test_inband_digits_from_a_wideband_phone_run_a_transfer(harness: Harness,
                                                                  codec: str) -> None:
    await transfer_by_digits(harness, codec, "inband", dtmf_pt=None)


@pytest.mark.site(f'[extensions.102]\ncodecs = {WIDE}\ndtmf = "inband"\n')
@pytest.mark.parametrize("codec", ["G722", "OPUS"])
async def test_inband_mode_detects_tones_even_with_telephone_event(harness: Harness,
                                                                   codec: str) -> None:
    await transfer_by_digits(harness, codec, "inband")


@pytest.mark.site(f'[extensions.102]\ncodecs = {WIDE}\n')
@pytest.mark.parametrize("codec", ["G722", "OPUS"])
async def test_rfc4733_digits_from_a_wideband_phone_run_a_transfer(harness: Harness,
                                                                   codec: str) -> None:
    await transfer_by_digits(harness, codec, "rfc4733")
