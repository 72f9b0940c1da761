"""baresip against TestPhone directly (no server): both directions of audio, DTMF, events."""

import asyncio

import pytest

from tests.peers.baresip import Baresip
from tests.peers.phone import TestPhone
from tests.peers.sipp import Sipp

pytestmark = pytest.mark.peer


async def test_testphone_calls_baresip_audio_both_ways_and_dtmf():
    async with Baresip("bob", tone="D") as bob, TestPhone("A") as a:
        call = await a.call(bob.uri)
        assert call.final_status == 200
        await bob.wait_event("CALL_ESTABLISHED")
        await a.wait_hearing({"D"})
        await bob.wait_hearing({"A"})
        await bob.send_dtmf("7#")
        await asyncio.sleep(0.3)
        assert call.dtmf_received == ["7", "#"]
        await call.hangup()
        await bob.wait_event("CALL_CLOSED")
        assert "A" in bob.heard_tones(seconds=1.0)  # the finished file still holds it


async def test_baresip_dials_testphone_transfers_and_hangs_up():
    async with Baresip("carol", tone="C") as carol, TestPhone("B") as b:
        await carol.dial(b.uri)
        incoming = await b.next_incoming()
        await carol.wait_event("CALL_ESTABLISHED")
        await b.wait_hearing({"C"})
        await carol.wait_hearing({"B"})
        await carol.transfer("sip:zed@127.0.0.1")
        await asyncio.sleep(0.3)
        refers = [m for m in incoming.requests if m.method == "REFER"]
        assert refers and "sip:zed@127.0.0.1" in refers[0].get("Refer-To")
        await carol.hangup()
        await incoming.wait_state("terminated")


async def test_baresip_manual_answer():
    async with Baresip("dave", tone="E", answer="manual") as dave, TestPhone("A") as a:
        call = await a.call(dave.uri, wait=False)
        await dave.wait_event("CALL_INCOMING")
        await call.wait_state("early")
        assert (await dave.answer())["ok"]
        assert await call.wait_final() == 200
        await a.wait_hearing({"E"})
        await call.hangup()
        await dave.wait_event("CALL_CLOSED")


async def test_baresip_registers_with_digest_checked_by_sipp():
    reg = await Sipp("selftest_registrar", users=[("erin", "pw1")]).start()
    async with Baresip("erin", "pw1", registrar=("127.0.0.1", reg.port)) as erin:
        await erin.wait_registered()
    (await reg.wait()).check()


async def test_unregistered_account_is_not_registered():
    async with Baresip("fay") as fay:
        assert not await fay.registered()
