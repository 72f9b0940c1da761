"""baresip, a real softphone, registered to a live mediasrv and calling through it (issue 3).

How this works: ``tests.peers.baresip.Baresip`` runs baresip with a sine source at its
identity tone and a recording of what it hears; it registers to the harness's server as an
extension (``outbound`` = the server, so every request goes through it) and is driven over
ctrl_tcp. Audio both ways is proved by each side hearing the other's tone, DTMF by the
digits a ``TestPhone`` receives as RFC 4733 events (baresip sends telephone-event; the
server's engine forwards them, RFC 4733 §2). The harness ends every test with its leak check.
"""

from __future__ import annotations

import time

import pytest

from tests.integration.conftest import Harness, MakeBaresip, wait_until

pytestmark = [pytest.mark.asyncio, pytest.mark.peer]



async def test_baresip_registers(harness: Harness, baresip: MakeBaresip) -> None:
    phone = await baresip("106", "D")
    assert harness.server.b2bua.registrar.is_registered("106", time.time())
    assert phone.user == "106"


async def test_baresip_calls_baresip_with_audio_both_ways(harness: Harness,
                                                          baresip: MakeBaresip) -> None:
    alice = await baresip("106", "D")
    bob = await baresip("107", "E")
    await alice.dial(harness.uri("107"))
    await alice.wait_event("CALL_ESTABLISHED")
    await bob.wait_event("CALL_ESTABLISHED")
    await bob.wait_hearing({"D"})
    await alice.wait_hearing({"E"})
    await alice.hangup()
    await bob.wait_event("CALL_CLOSED")
    await wait_until(lambda: not harness.server.b2bua.legs, 3, "both legs to end")


async def test_dtmf_from_baresip_reaches_the_far_side(harness: Harness,
                                                      baresip: MakeBaresip) -> None:
    alice = await baresip("106", "D")
    b = await harness.phone("B", "102")
    await alice.dial(harness.uri("102"))
    incoming = await b.next_incoming()
    await alice.wait_event("CALL_ESTABLISHED")
    await b.wait_hearing({"D"})
    await alice.send_dtmf("159")
    await wait_until(lambda: incoming.dtmf_received == ["1", "5", "9"], 3,
                     f"digits at B (got {incoming.dtmf_received})")
    await incoming.hangup()
    await alice.wait_event("CALL_CLOSED")


async def test_phone_calls_baresip_and_baresip_hangs_up(harness: Harness,
                                                        baresip: MakeBaresip) -> None:
    bob = await baresip("107", "E")
    a = await harness.phone("A", "101")
    call = await a.call(harness.uri("107"))
    assert call.final_status == 200
    await a.wait_hearing({"E"})
    await bob.wait_hearing({"A"})
    await bob.hangup()
    await call.wait_state("terminated")
