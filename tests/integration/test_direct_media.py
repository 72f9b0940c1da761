"""Direct media per extension: re-INVITEs move RTP between the phones and back to us.

Who sends where is read from each TestPhone's RTP destination (the other phone's port, or one
of the server's); what is heard is proved by identity tones, frame by frame for gaps.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from mediasrv.cli import summary
from mediasrv.config import DEFAULT_CONFIG_DIR, DEFAULT_PLUGIN_DIR, load_config
from tests.integration.conftest import MOH_HZ, Harness, wait_until
from tests.integration.test_refer import Tape, transfer_events
from tests.peers.call import Call
from tests.peers.phone import TestPhone

pytestmark = pytest.mark.asyncio

DIRECT = "[extensions.101]\ndirect_media = true\n[extensions.102]\ndirect_media = true\n"
MAX_GAP = 0.1


def sends_to(call: Call, other: Call) -> bool:
    return call.rtp.remote is not None and call.rtp.remote[1] == other.rtp.port


def via_server(harness: Harness, call: Call) -> bool:
    rtp = harness.server.config.rtp
    return call.rtp.remote is not None and rtp.port_min <= call.rtp.remote[1] <= rtp.port_max


def direct_between(x: Call, y: Call) -> bool:
    return sends_to(x, y) and sends_to(y, x)


async def direct_call(harness: Harness) -> tuple[TestPhone, TestPhone, Call, Call]:
    a = await harness.phone("A", "101")
    b = await harness.phone("B", "102")
    call = await a.call(harness.uri("102"))
    assert await call.wait_final() == 200
    incoming = b.active_calls()[0]
    await wait_until(lambda: direct_between(call, incoming), 3, "media to go direct")
    await a.wait_hearing({"B"})
    await b.wait_hearing({"A"})
    return a, b, call, incoming


@pytest.mark.site(DIRECT)
async def test_both_ends_allowing_direct_media_talk_directly_without_a_gap(
        harness: Harness) -> None:
    a = await harness.phone("A", "101")
    b = await harness.phone("B", "102")
    events: list[dict[str, object]] = []
    harness.server.b2bua.observers.append(events.append)
    call = await a.call(harness.uri("102"), wait=False)
    incoming = await b.next_incoming()
    tapes = Tape(call), Tape(incoming)
    assert await call.wait_final() == 200
    await wait_until(lambda: direct_between(call, incoming), 3, "media to go direct")
    t0 = time.monotonic()
    await a.wait_hearing({"B"})
    await b.wait_hearing({"A"})
    t1 = time.monotonic() + 0.5
    await wait_until(lambda: time.monotonic() > t1, 2)
    first_heard = min(t for tape in tapes for t, heard in tape.frames if heard)
    assert tapes[0].longest_gap({"B"}, max(first_heard, t0 - 0.5), t1) <= MAX_GAP
    assert tapes[1].longest_gap({"A"}, max(first_heard, t0 - 0.5), t1) <= MAX_GAP
    assert [e["state"] for e in events if e["kind"] == "direct_media"] == ["DIRECT"]
    await call.hangup()
    await incoming.wait_state("terminated")


@pytest.mark.site("[extensions.101]\ndirect_media = true\n")
async def test_one_end_without_direct_media_stays_anchored(harness: Harness) -> None:
    a = await harness.phone("A", "101")
    b = await harness.phone("B", "102")
    call = await a.call(harness.uri("102"))
    incoming = b.active_calls()[0]
    await b.wait_hearing({"A"})
    await a.wait_hearing({"B"})
    assert not sends_to(call, incoming) and not sends_to(incoming, call)
    await call.hangup()


@pytest.mark.site(DIRECT)
@pytest.mark.moh_tone
async def test_hold_takes_media_back_for_music_on_hold_and_resume_goes_direct_again(
        harness: Harness) -> None:
    a, b, call, incoming = await direct_call(harness)
    assert await call.hold() == 200
    await wait_until(lambda: not sends_to(incoming, call), 3, "B to send to the server")
    await wait_until(lambda: b.hears_freqs(MOH_HZ) and not b.hears(), 3, "B to hear MoH")
    assert await call.unhold() == 200
    await wait_until(lambda: direct_between(call, incoming), 3, "media direct again")
    await b.wait_hearing({"A"})
    await a.wait_hearing({"B"})
    await call.hangup()


@pytest.mark.site(DIRECT)
async def test_phone_reinvite_anchors_then_direct_again_without_a_gap(
        harness: Harness) -> None:
    a, b, call, incoming = await direct_call(harness)
    tapes = Tape(call), Tape(incoming)
    t0 = time.monotonic()
    assert await call.unhold() == 200  # a plain sendrecv re-INVITE from the phone
    await wait_until(lambda: not direct_between(call, incoming), 3, "media anchored")
    await wait_until(lambda: direct_between(call, incoming), 3, "media direct again")
    t1 = time.monotonic() + 0.3
    await wait_until(lambda: time.monotonic() > t1, 2)
    assert tapes[0].longest_gap({"B"}, t0, t1) <= MAX_GAP
    assert tapes[1].longest_gap({"A"}, t0, t1) <= MAX_GAP
    await call.hangup()


@pytest.mark.site(DIRECT + '[extensions.103.failover]\nbusy = { action = "forward", to = "104" }\n')
async def test_refer_with_direct_media_anchors_and_skips_failover(harness: Harness) -> None:
    events = transfer_events(harness)
    a, b, call, incoming = await direct_call(harness)
    await harness.phone("C", "103", answer=486)
    d = await harness.phone("D", "104")
    assert await call.refer(harness.uri("103")) == 202
    await call.wait_notify("SIP/2.0 486")
    assert d.calls == []  # busy = forward to 104 did not run
    assert events[0]["failover"] is False
    await wait_until(lambda: direct_between(call, incoming), 3, "A and B direct again")
    await a.wait_hearing({"B"})
    await call.hangup()


@pytest.mark.site(DIRECT)
async def test_refer_to_a_party_without_direct_media_moves_media_through_the_server(
        harness: Harness) -> None:
    a, b, call, incoming = await direct_call(harness)
    c = await harness.phone("C", "103")
    assert await call.refer(harness.uri("103")) == 202
    await call.wait_notify("SIP/2.0 200")
    await b.wait_hearing({"C"})
    c_call = c.active_calls()[0]
    await c.wait_hearing({"B"})
    assert via_server(harness, incoming) and via_server(harness, c_call)
    await c_call.hangup()
    await incoming.wait_state("terminated")


@pytest.mark.site(DIRECT)
async def test_dtmf_codes_do_not_reach_the_server_while_media_is_direct(
        harness: Harness) -> None:
    events = transfer_events(harness)
    a, b, call, incoming = await direct_call(harness)
    await call.send_dtmf("#4")
    await wait_until(lambda: incoming.dtmf_received == ["#", "4"], 3, "B gets the digits")
    assert events == [] and not a.hears_freqs([440, 480])
    await call.hangup()


async def test_check_config_warns_about_direct_media_with_services(tmp_path: Path) -> None:
    site = tmp_path / "site"
    site.mkdir()
    (site / "50.toml").write_text(
        '[extensions.101]\ndirect_media = true\n'
        '[extensions.102]\ndirect_media = true\nservices = []\n')
    text = summary(load_config([DEFAULT_CONFIG_DIR, site], DEFAULT_PLUGIN_DIR))
    assert "warning: extension 101 has direct_media on" in text
    assert "extension 102 has direct_media" not in text
    assert "extension 103 has direct_media" not in text
