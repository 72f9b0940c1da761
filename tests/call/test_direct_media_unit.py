"""Direct media on the fake clock: phones re-INVITEd to each other, and back on need."""

from __future__ import annotations

from pathlib import Path

import pytest

from mediasrv.config import FailoverAction
from tests.call.world import SERVER, Phone, PhoneCall, World


@pytest.fixture
def world(tmp_path: Path) -> World:
    return World(tmp_path, direct=("101", "102", "103"))


def talking(world: World, a: Phone, b: Phone) -> PhoneCall:
    call = a.call(b.number)
    b.answer()
    world.advance(0.1)
    return call


def sends_to(phone: Phone) -> str:
    """Where the server last told `phone` to send its RTP (the last re-INVITE's address)."""
    return phone.reinvites[-1].connection or ""


def direct_states(world: World) -> list[object]:
    return [e["state"] for e in world.events if e["kind"] == "direct_media"]


def test_two_direct_media_phones_are_sent_to_each_other(world: World) -> None:
    a, b = world.phone("101"), world.phone("102")
    ab = talking(world, a, b)
    assert sends_to(a) == b.addr[0] and sends_to(b) == a.addr[0]
    assert direct_states(world) == ["DIRECT"]
    assert world.engine.direction[world.leg("101").stream] == (False, False)
    a.hangup(ab)
    world.settled()


def test_a_phone_without_direct_media_stays_anchored(world: World) -> None:
    a, d = world.phone("101"), world.phone("104")
    ad = talking(world, a, d)
    assert a.reinvites == [] and d.reinvites == [] and direct_states(world) == []
    a.hangup(ad)
    world.settled()


def test_hold_takes_the_media_back_and_resume_goes_direct_again(world: World) -> None:
    a, b = world.phone("101"), world.phone("102")
    ab = talking(world, a, b)
    a.request(ab, "INVITE", (("Content-Type", "application/sdp"),),
              a.sdp().replace(b"sendrecv", b"sendonly"))
    world.advance(0.1)
    assert sends_to(b) == SERVER[0]  # B hears music on hold from the server
    assert world.hears("102").startswith("moh")
    assert direct_states(world) == ["DIRECT", "ANCHORING", "ANCHORED"]
    a.request(ab, "INVITE", (("Content-Type", "application/sdp"),), a.sdp())
    world.advance(0.1)
    assert direct_states(world)[-1] == "DIRECT" and sends_to(b) == a.addr[0]
    a.hangup(ab)
    world.settled()


def test_a_refer_transfer_takes_the_media_back_then_the_new_pair_goes_direct(
        world: World) -> None:
    a, b, c = world.phone("101"), world.phone("102"), world.phone("103")
    ab = talking(world, a, b)
    b.refer(b.calls[0], "103")
    world.advance(0.1)
    assert sends_to(a) == SERVER[0]  # A hears ringback from the server
    assert world.hears("101") == "tone:ringback"
    c.answer()
    world.advance(0.1)
    assert b.final_notify == "SIP/2.0 200 OK"
    assert sends_to(a) == c.addr[0] and sends_to(c) == a.addr[0]
    a.hangup(ab)
    world.settled()


def test_a_phone_refusing_the_direct_offer_keeps_the_pair_anchored(world: World) -> None:
    a, b = world.phone("101"), world.phone("102")
    a.reinvite_status = 488
    ab = talking(world, a, b)
    assert len(a.reinvites) == 1 and b.reinvites == []
    assert direct_states(world) == ["ANCHORING", "ANCHORED"]
    world.advance(5.0)
    assert len(a.reinvites) == 1  # refused for good: not offered again
    a.hangup(ab)
    world.settled()


def test_a_phone_gone_during_our_reinvite_is_hung_up_with_its_peer(world: World) -> None:
    a, b = world.phone("101"), world.phone("102")
    a.unplugged = True  # A's phone disappears as the call is answered
    a.call("102")
    b.answer()
    world.advance(40.0)  # our re-INVITE to A times out (64·T1): A's leg and its peer end
    assert b.calls[0].ended
    world.settled()


def test_a_refer_transfer_of_a_direct_call_skips_the_target_failover(tmp_path: Path) -> None:
    """Media was direct: the transfer does not forward (no hop is left), it gives the call
    back, anchored again."""
    world = World(tmp_path, direct=("101", "102"), failover={
        "103": {"not_registered": FailoverAction("forward", "104")}})
    a, b, d = world.phone("101"), world.phone("102"), world.phone("104")
    ab = talking(world, a, b)
    b.refer(b.calls[0], "103")
    world.advance(0.5)
    assert d.calls == []  # no forward to 104
    assert b.final_notify == "SIP/2.0 480 Temporarily Unavailable"
    assert world.hears("101") == "102"
    a.hangup(ab)
    world.settled()


def test_invite_with_replaces_takes_over_a_direct_media_call(world: World) -> None:
    a, b, c = world.phone("101"), world.phone("102"), world.phone("103")
    ab = talking(world, a, b)
    assert direct_states(world) == ["DIRECT"]
    new = c.call("101", replaces=b.replaces_for(b.calls[0]))
    world.advance(0.5)
    assert new.status == 200 and b.calls[0].ended
    assert world.hears("101") == "103"
    assert sends_to(a) == c.addr[0]  # the new pair went direct in turn
    a.hangup(ab)
    world.settled()
