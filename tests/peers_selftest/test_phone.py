"""TestPhone against TestPhone over loopback, no server: signalling, audio, DTMF, hold."""

import asyncio

import pytest

from tests.peers.call import until
from tests.peers.phone import TestPhone


@pytest.fixture
async def pair():
    a, b = TestPhone("A"), TestPhone("B")
    await a.start()
    await b.start()
    yield a, b
    await a.close()
    await b.close()


async def test_call_answer_and_hear_each_other(pair):
    a, b = pair
    call = await a.call(b.uri)
    assert call.final_status == 200 and call.provisional[-1] == 180
    incoming = await b.next_incoming()
    await a.wait_hearing({"B"})
    await b.wait_hearing({"A"})
    assert incoming.state == "confirmed"
    await asyncio.sleep(0.3)
    await call.hangup()
    await incoming.wait_state("terminated")
    assert a.hears() == set() and b.hears() == set()
    assert call.rtp.stats.sent > 10 and incoming.rtp.stats.received > 10


async def test_busy_and_sip_event_times(pair):
    a, b = pair
    b.answer_code = 486
    call = await a.call(b.uri)
    assert call.final_status == 486 and call.state == "terminated"
    sent, arrived = a.event_times("INVITE", "tx")[0], b.event_times("INVITE")[0]
    assert 0 <= arrived - sent < 0.5
    assert b.event_times("ACK")  # the 486 was acknowledged


async def test_cancel_unanswered_call(pair):
    a, b = pair
    b.answer_code = None
    call = await a.call(b.uri, wait=False)
    await call.wait_state("early")
    incoming = await b.next_incoming()
    await call.hangup()
    assert call.final_status == 487
    await incoming.wait_state("terminated")
    assert incoming.final_status == 487


async def test_answer_on_demand_and_late_answer_audio(pair):
    a, b = pair
    b.answer_code = None
    call = await a.call(b.uri, wait=False)
    incoming = await b.next_incoming()
    await asyncio.sleep(0.3)
    assert call.state == "early" and a.hears() == set()
    await incoming.answer()
    assert await call.wait_final() == 200
    await a.wait_hearing({"B"})


async def test_rfc4733_and_inband_dtmf(pair):
    a, b = pair
    call = await a.call(b.uri)
    incoming = await b.next_incoming()
    await call.send_dtmf("1#9", gap=0.05)
    await until(lambda: incoming.dtmf_received == ["1", "#", "9"], 2,
                lambda: f"B received digits {incoming.dtmf_received}")
    await b.wait_hearing({"A"})
    sending = asyncio.create_task(call.send_dtmf("5", mode="inband", duration=0.2, gap=0))
    await b.wait_freqs((770, 1336), timeout=2)  # the digit's two tones, while they play
    await sending


async def test_hold_and_unhold(pair):
    a, b = pair
    call = await a.call(b.uri)
    incoming = await b.next_incoming()
    await b.wait_hearing({"A"})
    assert await call.hold() == 200
    assert incoming.rtp.local_direction == "recvonly"
    await b.wait_hearing(set())
    assert call.rtp.remote_direction == "recvonly"
    assert await call.unhold() == 200
    await b.wait_hearing({"A"})
    await a.wait_hearing({"B"})


async def test_options_and_refer_in_dialog(pair):
    a, b = pair
    call = await a.call(b.uri)
    await b.next_incoming()
    assert await call.options() == 200
    assert (await a.options(b.uri)).status == 200
    assert await call.refer("sip:c@127.0.0.1") == 501  # the phone does not take transfers
    assert b.received[-1].get("Refer-To") == "<sip:c@127.0.0.1>"


async def test_unanswered_call_times_out_with_cancel(pair):
    a, b = pair
    b.answer_code = None
    call = await a.call(b.uri, timeout=0.5)
    incoming = await b.next_incoming()
    assert call.state == "terminated"
    await incoming.wait_state("terminated")
    assert incoming.final_status == 487 and a.event_times("CANCEL", "tx")


async def test_close_releases_sockets_and_tasks(pair):
    a, b = pair
    call = await a.call(b.uri)
    incoming = await b.next_incoming()
    await a.close()
    await asyncio.sleep(0.05)
    assert call.rtp._transport is None and call.rtp._task is None and a._transport is None
    assert not a._tasks  # every task ended (each removes itself when done)
    assert incoming.rtp._transport is not None  # b still up; the pair fixture closes it


async def test_refer_with_replaces_and_notify_in_dialog(pair):
    a, b = pair
    async with TestPhone("C") as c:
        to_b, to_c = await a.call(b.uri), await a.call(c.uri)
        from_a = await b.next_incoming()
        assert await to_b.refer(c.uri, replaces=to_c, refer_sub=False) == 501
        refer = from_a.requests[-1]
        assert refer.method == "REFER" and refer.get("Refer-Sub") == "false"
        replaces = f"{to_c.call_id}%3Bto-tag%3D{to_c.remote_tag}%3Bfrom-tag%3D{to_c.local_tag}"
        assert refer.get("Refer-To") == f"<{c.uri}?Replaces={replaces}>"
        notify = await from_a.request("NOTIFY", [("Event", "refer"),
                                                 ("Subscription-State", "terminated")],
                                      b"SIP/2.0 200 OK\r\n", "message/sipfrag")
        assert notify.status == 200
        assert (await to_b.wait_notify("SIP/2.0 200")).get("Event") == "refer"
