"""HD voice end to end: baresip calls baresip through mediasrv with G.722, Opus and G.711.

How this works: two real baresips (Debian's g722 and opus modules) register as extensions
whose `codecs` allow wideband; each account offers only the codec under test. The caller's
sine is at 6 kHz, above anything G.711 can carry (its 8 kHz sampling stops at 4 kHz); the
callee sends its identity tone. What each baresip decoded is read from its dump at the
codec's own rate: the 6 kHz tone must reach the callee on a G.722 or Opus path (relayed
unchanged when both legs agree, transcoded G.722 <-> Opus at 16 kHz inside the engine) and
must not on a G.711 path, nor alias into the narrow band when the engine transcodes
G.722 -> PCMU. The engine's own counters show relay (no decode) versus transcoding.
"""

from __future__ import annotations

import asyncio

import numpy as np
import pytest

from tests.integration.conftest import Harness, MakeBaresip, wait_until
from tests.peers.baresip import Baresip

WIDE = '["G722", "opus", "PCMU", "PCMA"]'
pytestmark = [
    pytest.mark.asyncio, pytest.mark.peer,
    pytest.mark.site(f"[extensions.106]\ncodecs = {WIDE}\n[extensions.107]\ncodecs = {WIDE}\n"),
]
HIGH_HZ = 6000


def amplitude(pcm: np.ndarray, rate: int, hz: float) -> float:
    """Amplitude (of 32768) of one frequency in pcm: Hann-windowed single-bin DFT."""
    if hz >= rate / 2 or len(pcm) < rate // 10:
        return 0.0
    x = pcm.astype(np.float64)
    w = np.hanning(len(x))
    t = np.arange(len(x)) / rate
    return float(2 * abs(np.dot(x * w, np.exp(-2j * np.pi * hz * t))) / w.sum())


async def call(harness: Harness, baresip: MakeBaresip, a_codecs: str, b_codecs: str):
    """106 (sending 6 kHz) calls 107 (sending its identity tone E); both hear for 1 s."""
    alice = await baresip("106", "D", a_codecs, tone_hz=HIGH_HZ)
    bob = await baresip("107", "E", b_codecs)
    await alice.dial(harness.uri("107"))
    await alice.wait_event("CALL_ESTABLISHED")
    await bob.wait_event("CALL_ESTABLISHED")
    await alice.wait_hearing({"E"})
    await asyncio.sleep(1.0)
    legs = sorted(harness.server.b2bua.legs, key=lambda leg: leg.number)
    codecs = [leg.media.codec for leg in legs]
    stats = [harness.server.engine.stats(leg.stream) for leg in legs]
    pcm, rate = bob.recording_wide()
    tail = pcm[-rate // 2:]
    heard = {"high": amplitude(tail, rate, HIGH_HZ), "alias": amplitude(tail, rate, 2000),
             "rms": float(np.sqrt(np.mean(tail.astype(np.float64) ** 2))), "rate": rate}
    await alice.hangup()
    await bob.wait_event("CALL_CLOSED")
    await wait_until(lambda: not harness.server.b2bua.legs, 3, "both legs to end")
    return codecs, stats, heard


G722 = "G722/16000/1"        # baresip names a codec by name/sample rate/channels
OPUS = "opus/48000/2"


@pytest.mark.parametrize(("codec", "name", "rate"), [(G722, "G722", 16000),
                                                     (OPUS, "OPUS", 48000)])
async def test_wideband_call_carries_6khz(harness: Harness, baresip: MakeBaresip, codec: str,
                                          name: str, rate: int) -> None:
    codecs, stats, heard = await call(harness, baresip, codec, codec)
    assert codecs == [name, name]                     # both legs agree: relayed unchanged
    assert heard["rate"] == rate
    assert heard["high"] > 5000, heard
    assert all(s["packets_out"] > 40 for s in stats)


async def test_g711_call_does_not(harness: Harness, baresip: MakeBaresip) -> None:
    codecs, _, heard = await call(harness, baresip, "PCMU", "PCMU")
    assert codecs == ["PCMU", "PCMU"]
    assert heard["rate"] == 8000 and heard["rms"] < 300, heard


async def test_g722_to_pcmu_is_transcoded_without_aliasing(harness: Harness,
                                                           baresip: MakeBaresip) -> None:
    codecs, _, heard = await call(harness, baresip, G722, "PCMU")
    assert codecs == ["G722", "PCMU"]
    assert heard["rms"] < 300 and heard["alias"] < 100, heard   # nothing folded to 2 kHz


async def test_g722_to_opus_is_transcoded_wideband(harness: Harness, baresip: MakeBaresip) -> None:
    codecs, _, heard = await call(harness, baresip, G722, OPUS)
    assert codecs == ["G722", "OPUS"]
    assert heard["rate"] == 48000 and heard["high"] > 5000, heard


@pytest.mark.parametrize(("codec", "name"), [(G722, "G722"), (OPUS, "OPUS")])
async def test_rfc4733_dtmf_from_a_wideband_leg(harness: Harness, baresip: MakeBaresip, codec: str,
                                                name: str) -> None:
    # baresip sends telephone-event on its G.722/Opus leg; the far phone speaks PCMU, so the
    # engine transcodes the audio and sends each digit again as that leg's own event.
    alice = await baresip("106", "D", codec)
    b = await harness.phone("B", "102")
    await alice.dial(harness.uri("102"))
    incoming = await b.next_incoming()
    await alice.wait_event("CALL_ESTABLISHED")
    await b.wait_hearing({"D"})
    assert sorted(leg.media.codec for leg in harness.server.b2bua.legs) == sorted([name, "PCMU"])
    await alice.send_dtmf("159")
    await wait_until(lambda: incoming.dtmf_received == ["1", "5", "9"], 3,
                     f"digits at B (got {incoming.dtmf_received})")
    await incoming.hangup()
    await alice.wait_event("CALL_CLOSED")


@pytest.mark.moh_tone
async def test_attended_transfer_mixing_opus_g722_and_pcmu(harness: Harness,
                                                            baresip: MakeBaresip) -> None:
    # A: baresip on Opus (tone D) calls B, our PCMU test phone (tone B), the transferer.
    # B dials #4 and 107, C: baresip on G.722 (tone E); then *3 (a conference of an Opus,
    # a PCMU and a G.722 leg), then B hangs up: A and C talk, G.722 <-> Opus.
    a = await baresip("106", "D", OPUS)
    c = await baresip("107", "E", G722)
    b = await harness.phone("B", "102")
    await a.dial(harness.uri("102"))
    b_call = await b.next_incoming()
    await a.wait_event("CALL_ESTABLISHED")
    await b.wait_hearing({"D"})
    await a.wait_hearing({"B"})
    await b_call.send_dtmf("#4")
    await wait_until(lambda: hears_moh(a), 3, "A to hear only MoH")
    await b_call.send_dtmf("107#")
    await c.wait_event("CALL_ESTABLISHED")
    await b.wait_hearing({"E"})
    await c.wait_hearing({"B"})
    assert hears_moh(a)
    codecs = {leg.number: leg.media.codec for leg in harness.server.b2bua.legs}
    assert codecs == {"106": "OPUS", "102": "PCMU", "107": "G722"}, codecs
    await b_call.send_dtmf("*3")                      # three-way: everyone hears the others
    await b.wait_hearing({"D", "E"})
    await a.wait_hearing({"B", "E"})
    await c.wait_hearing({"B", "D"})
    await b_call.hangup()                             # complete: A and C alone
    await a.wait_hearing({"E"})
    await c.wait_hearing({"D"})
    await a.hangup()
    await c.wait_event("CALL_CLOSED")
    await wait_until(lambda: not harness.server.b2bua.legs, 3, "every leg to end")


def hears_moh(phone: Baresip) -> bool:
    """Only the MoH tone (2200 Hz) and no identity tone in the last 0.3 s."""
    tail = phone.recording()[-2400:]
    return len(tail) == 2400 and amplitude(tail, 8000, 2200) > 1000 and not phone.heard_tones()
