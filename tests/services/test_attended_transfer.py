"""Attended transfer, every path of shared/specs/attended-transfer.md, on the fake call model.

Each test scripts the users' key presses and the far ends' answers and hang-ups, and asserts
who hears whom after each step, the published states, and that nothing leaked.
"""

from __future__ import annotations

import pytest

from mediasrv.config import FailoverAction

from .conftest import World, make_world, service_config
from .fake_call import FakeLeg


def start(w: World) -> None:
    """T and X talk; T dials #4: X hears MoH, T hears the transfer prompt."""
    w.connect()
    w.fake.press(w.t, "#4")
    assert w.hears(w.x) == "moh:default"
    assert w.hears(w.t) == "prompt:transfer"
    assert w.fake.sent == []  # the code never reached X


def dial(w: World, number: str = "102") -> FakeLeg:
    """T dials the addressee (ended by #); T hears ringback while it rings."""
    w.fake.press(w.t, number + "#")
    a = w.fake.legs[[leg for leg in w.fake.legs if leg.startswith("out")][-1]]
    assert w.fake.dials[-1] == (number, "T", "attended transfer")
    w.fake.ring(a)
    assert w.hears(w.t) == "tone:ringback"
    assert w.hears(w.x) == "moh:default"
    return a


def consult(w: World, number: str = "102") -> FakeLeg:
    start(w)
    a = dial(w, number)
    w.fake.answer(a)
    assert w.fake.talking(w.t, a)
    assert w.hears(w.x) == "moh:default"
    return a


def assert_rebridged(w: World) -> None:
    assert w.fake.talking(w.t, w.x)
    assert w.fake.states()[-1] == "REBRIDGE"
    w.assert_clean()


# --------------------------------------------------------------------------- complete


def test_complete_after_answer(world: World) -> None:
    a = consult(world)
    world.fake.far_hangup(world.t)
    assert world.fake.talking(world.x, a)
    assert world.fake.states() == ["COLLECTING", "CALLING_TARGET", "CONSULTING", "COMPLETE"]
    world.assert_clean()


def test_transitions_are_published_with_the_call_id_and_parties(world: World) -> None:
    consult(world)
    call_id, kind, fields = world.fake.published[-1]
    assert (call_id, kind) == ("call-T", "transfer")
    assert fields["state"] == "CONSULTING" and fields["previous"] == "CALLING_TARGET"
    assert (fields["transferer"], fields["transferred"], fields["addressee"]) == (
        "100", "101", "102")
    assert fields["service"] == "attended_transfer" and fields["event"] == "answered"


def test_after_complete_the_new_call_can_transfer_again(world: World) -> None:
    a = consult(world)
    world.fake.far_hangup(world.t)
    world.fake.press(a, "#4")  # the addressee, now in an ordinary call with X, transfers X
    assert world.hears(world.x) == "moh:default"
    assert world.hears(a) == "prompt:transfer"
