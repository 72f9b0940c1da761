"""Blind transfer (`#1`): the second service on the same contract."""

from __future__ import annotations

import pytest

from .conftest import World, make_world, service_config
from .fake_call import FakeLeg


def send(w: World, number: str) -> FakeLeg:
    w.connect()
    w.fake.press(w.t, "#1")
    assert w.hears(w.x) == "moh:default"
    assert w.hears(w.t) == "prompt:transfer"
    w.fake.press(w.t, number + "#")
    assert w.fake.dials[-1] == (number, "X", "blind transfer")  # X is shown as the caller
    assert w.t.ended and "T" in w.fake.hangups  # the transferer leaves at once
    assert w.hears(w.x) == "tone:ringback"
    return w.fake.legs[[leg for leg in w.fake.legs if leg.startswith("out")][-1]]


def test_blind_transfer_completes_on_answer(world: World) -> None:
    a = send(world, "102")
    world.fake.answer(a)
    assert world.fake.talking(world.x, a)
    assert world.fake.states() == ["COLLECTING", "CALLING_TARGET", "COMPLETE"]
    assert {f["service"] for _, _, f in world.fake.published} == {"blind_transfer"}
    world.assert_clean()


def test_blind_transfer_leaves_an_ordinary_call(world: World) -> None:
    a = send(world, "102")
    world.fake.answer(a)
    world.fake.press(a, "#4")
    assert world.hears(a) == "prompt:transfer"


@pytest.mark.parametrize(("number", "condition", "hears"), [
    ("102", "busy", "tone:failed"),           # return: nobody to return to
    ("103", "busy", "prompt:busy"),           # announce
    ("103", "no_answer", "voicemail:103"),    # voicemail
    ("103", "not_registered", "tone:failed"),  # hangup
])
def test_target_failover_applies_to_the_transferred(world: World, number: str,
                                                    condition: str, hears: str) -> None:
    a = send(world, number)
    world.fake.fail(a, condition)
    assert world.hears(world.x) == hears
    if hears.startswith("prompt"):
        world.fake.prompt_done(world.x)
    elif hears.startswith("tone"):
        world.fake.advance(2.0)
    else:
        world.fake.far_hangup(world.x)
    assert world.x.ended
    assert world.fake.states()[-1] == "FAIL"
    world.assert_clean()


def test_transferred_hangs_up_while_target_rings(world: World) -> None:
    a = send(world, "102")
    world.fake.far_hangup(world.x)
    assert a.ended and a.id in world.fake.hangups
    world.assert_clean()


def test_invalid_numbers_then_reconnect(world: World) -> None:
    world.connect()
    world.fake.press(world.t, "#1")
    world.fake.press(world.t, "100#")  # the transferer itself
    assert world.hears(world.t) == "prompt:invalid"
    world.fake.press(world.t, "777#")
    world.fake.press(world.t, "101#")  # the transferred party
    assert world.fake.talking(world.t, world.x)
    assert world.fake.dials == []
    world.assert_clean()


def test_blind_code_is_configurable() -> None:
    w = make_world(service_config("blind_transfer", codes={"start": "*2"}))
    w.connect()
    w.fake.press(w.t, "#1")
    assert w.fake.sent_to("X") == "#1"
    w.fake.press(w.t, "*2")
    assert w.hears(w.t) == "prompt:transfer"
