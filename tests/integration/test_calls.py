"""Calls between extensions through the B2BUA, proved by audio: each phone sends its own tone."""

from __future__ import annotations

import asyncio

import pytest

from tests.integration.conftest import MOH_HZ, Harness, wait_until

pytestmark = pytest.mark.asyncio


async def test_register_and_call_with_audio_both_ways(harness: Harness) -> None:
    a = await harness.phone("A", "101")
    b = await harness.phone("B", "102")
    call = await a.call(harness.uri("102"))
    assert await call.wait_final() == 200
    await a.wait_hearing({"B"})
    await b.wait_hearing({"A"})
    await call.hangup()
    await wait_until(lambda: not b.active_calls(), 3, "B's call to end")




async def test_callee_hangs_up_and_both_legs_end(harness: Harness) -> None:
    a = await harness.phone("A", "101")
    b = await harness.phone("B", "102")
    call = await a.call(harness.uri("102"))
    assert await call.wait_final() == 200
    incoming = b.active_calls()[0]
    await b.wait_hearing({"A"})
    await incoming.hangup()
    await call.wait_state("terminated")


async def test_saturated_media_threads_refuse_new_calls_with_503(harness: Harness) -> None:
    a = await harness.phone("A", "101")
    await harness.phone("B", "102")
    harness.server.engine.admits = lambda now: False  # every media thread over rtp.max_busy
    call = await a.call(harness.uri("102"))
    assert await call.wait_final() == 503
    final = [r for r in call.responses if r.status >= 200]
    assert final and final[-1].get("Retry-After") == "5"


async def test_busy_callee_gives_486(harness: Harness) -> None:
    a = await harness.phone("A", "101")
    await harness.phone("B", "102", answer=486)
    call = await a.call(harness.uri("102"))
    assert await call.wait_final() == 486


@pytest.mark.site('[extensions.102]\nring_timeout = 1\n')
async def test_ring_timeout_is_no_answer(harness: Harness) -> None:
    a = await harness.phone("A", "101")
    b = await harness.phone("B", "102", answer=None)
    call = await a.call(harness.uri("102"))
    assert await call.wait_final(timeout=5) == 480
    assert 180 in call.provisional
    await wait_until(lambda: b.calls and b.calls[0].state == "terminated", 3, "B CANCELled")


async def test_unregistered_callee_is_480_and_unknown_is_404(harness: Harness) -> None:
    a = await harness.phone("A", "101")
    assert await (await a.call(harness.uri("103"))).wait_final() == 480
    assert await (await a.call(harness.uri("999"))).wait_final() == 404


async def test_not_registered_announce_plays_prompt_then_hangs_up(harness: Harness) -> None:
    a = await harness.phone("A", "101")
    call = await a.call(harness.uri("100"))  # 100: not_registered = announce "unavailable"
    assert await call.wait_final() == 200
    await wait_until(lambda: call.hearing.has_audio(), 3, "the prompt")
    await call.wait_state("terminated", timeout=10)


async def test_caller_cancels_while_ringing(harness: Harness) -> None:
    a = await harness.phone("A", "101")
    b = await harness.phone("B", "102", answer=None)
    call = await a.call(harness.uri("102"), wait=False)
    incoming = await b.next_incoming()
    await call.wait_state("early")
    await call.hangup()
    assert call.final_status == 487
    await incoming.wait_state("terminated")


async def test_unregister_then_call_is_480(harness: Harness) -> None:
    a = await harness.phone("A", "101")
    b = await harness.phone("B", "102")
    assert (await b.unregister()).status == 200
    assert await (await a.call(harness.uri("102"))).wait_final() == 480


async def test_wrong_password_is_403(harness: Harness) -> None:
    from tests.peers.phone import TestPhone
    phone = TestPhone("A", "101", "wrong", server=harness.sip_addr)
    await phone.start()
    harness.phones.append(phone)
    assert (await phone.register()).status == 403


async def test_options_out_of_dialog(harness: Harness) -> None:
    a = await harness.phone("A", "101", register=False)
    resp = await a.options()
    assert resp.status == 200 and "INVITE" in resp.get("Allow")


async def test_forked_call_first_answer_wins_other_is_cancelled(harness: Harness) -> None:
    a = await harness.phone("A", "101")
    b1 = await harness.phone("B", "102", answer=None)
    b2 = await harness.phone("C", "102", answer=None)
    call = await a.call(harness.uri("102"), wait=False)
    in1, in2 = await b1.next_incoming(), await b2.next_incoming()
    await in2.answer()
    assert await call.wait_final() == 200
    await in1.wait_state("terminated")
    await a.wait_hearing({"C"})
    await b2.wait_hearing({"A"})
    await call.hangup()


@pytest.mark.moh_tone
async def test_phone_hold_gives_the_other_party_music_on_hold(harness: Harness) -> None:
    a = await harness.phone("A", "101")
    b = await harness.phone("B", "102")
    call = await a.call(harness.uri("102"))
    await b.wait_hearing({"A"})
    assert await call.hold() == 200
    await wait_until(lambda: b.hears_freqs(MOH_HZ) and not b.hears(), 3, "B to hear only MoH")
    assert await call.unhold() == 200
    await b.wait_hearing({"A"})
    await a.wait_hearing({"B"})
    await call.hangup()


async def test_malformed_input_does_not_disturb_a_call(harness: Harness) -> None:
    import socket
    a = await harness.phone("A", "101")
    b = await harness.phone("B", "102")
    call = await a.call(harness.uri("102"))
    await b.wait_hearing({"A"})
    loop = asyncio.get_running_loop()
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        s.setblocking(False)
        s.sendto(b"\x00\xffgarbage\r\n\r\n", harness.sip_addr)
        s.sendto(b"INVITE sip:102@127.0.0.1 SIP/2.0\r\n"
                 b"Via: SIP/2.0/UDP 127.0.0.1:9;rport;branch=z9hG4bKx\r\n"
                 b"From: <sip:x@y>;tag=1\r\nTo: <sip:102@127.0.0.1\r\nCall-ID: bad\r\n"
                 b"CSeq: 1 INVITE\r\nContent-Length: 0\r\n\r\n", harness.sip_addr)
        reply, _ = await asyncio.wait_for(loop.sock_recvfrom(s, 4096), 2)
    assert reply.startswith(b"SIP/2.0 400 ")
    await a.wait_hearing({"B"})
    await b.wait_hearing({"A"})
    await call.hangup()


async def test_answer_crossing_the_callers_cancel_is_acked_and_ended(harness: Harness) -> None:
    a = await harness.phone("A", "101")
    b = await harness.phone("B", "102", answer=None)
    call = await a.call(harness.uri("102"), wait=False)
    incoming = await b.next_incoming()
    await call.wait_state("early")
    await asyncio.gather(call.hangup(), incoming.answer())
    await incoming.wait_state("terminated", timeout=5)
    assert call.state == "terminated"
