"""INVITE with Replaces (RFC 3891 §3) on the fake clock: the new phone takes the old one's place."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.call.world import Phone, PhoneCall, World


@pytest.fixture
def world(tmp_path: Path) -> World:
    return World(tmp_path)


def talking(world: World, a: Phone, b: Phone) -> PhoneCall:
    call = a.call(b.number)
    b.answer()
    assert call.status == 200
    return call


def test_replaces_a_confirmed_call_swaps_the_leg_in_the_same_bridge(world: World) -> None:
    a, b, d = world.phone("101"), world.phone("102"), world.phone("104")
    ab = talking(world, a, b)
    # D (e.g. B's other phone) picks the call up: it names B's dialog as the server holds it
    new = d.call("101", replaces=b.replaces_for(b.calls[0]))
    assert new.status == 200
    assert world.hears("101") == "104" and world.hears("104") == "101"
    assert b.calls[0].ended  # the replaced leg gets a BYE
    assert [e["state"] for e in world.events if e["kind"] == "transfer"] == ["START", "COMPLETE"]
    a.hangup(ab)
    assert new.ended
    world.settled()


def test_replaces_a_ringing_call_we_placed_picks_it_up(world: World) -> None:
    a, c, d = world.phone("101"), world.phone("103"), world.phone("104")
    ac = a.call("103")
    ringing = c.ringing()
    new = d.call("101", replaces=c.replaces_for(ringing))  # pick-up of C's ringing call
    assert new.status == 200 and ac.status == 200  # the caller is answered by the new phone
    assert ringing.ended  # C stops ringing (CANCEL)
    assert world.hears("101") == "104"
    a.hangup(ac)
    world.settled()


@pytest.mark.parametrize("case, status", [
    ("no such dialog", 481), ("early-only on a confirmed dialog", 486),
    ("a dialog that ended", 603), ("an early dialog we did not initiate", 481),
    ("two Replaces", 400)])
def test_bad_replaces_gets_the_rfc3891_answer(world: World, case: str, status: int) -> None:
    a, b, c, d = (world.phone(n) for n in ("101", "102", "103", "104"))
    ab = talking(world, a, b)
    named = b.replaces_for(b.calls[0])
    if case == "no such dialog":
        named = "nope@x;to-tag=1;from-tag=2"
    elif case == "early-only on a confirmed dialog":
        named += ";early-only"
    elif case == "a dialog that ended":
        ended = talking(world, c, b)
        named = b.replaces_for(b.calls[1])
        c.hangup(ended)
    elif case == "an early dialog we did not initiate":
        named = c.replaces_for(c.call("102"))  # C's call rings at B: its early dialog
    elif case == "two Replaces":
        named = f"{named}, {named}"
    new = d.call("101", replaces=named)
    assert new.status == status
    assert world.hears("101") == "102"  # nothing changed
    a.hangup(ab)
    for call in b.calls:
        if call.invite is not None:
            b.answer(call, 486)
    world.settled()


def test_replaces_needs_an_sdp_that_negotiates(world: World) -> None:
    a, b, d = world.phone("101"), world.phone("102"), world.phone("104")
    ab = talking(world, a, b)
    d.offer = (b"v=0\r\no=- 1 1 IN IP4 127.0.1.3\r\ns=-\r\nc=IN IP4 127.0.1.3\r\nt=0 0\r\n"
               b"m=audio 20104 RTP/AVP 18\r\na=rtpmap:18 G729/8000\r\n")
    new = d.call("101", replaces=b.replaces_for(b.calls[0]))
    assert new.status == 488
    a.hangup(ab)
    world.settled()
