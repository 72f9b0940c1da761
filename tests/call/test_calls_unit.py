"""The B2BUA on a fake clock with in-memory phones: ordinary calls, failover, hang-ups."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.call.world import World


@pytest.fixture
def world(tmp_path: Path) -> World:
    return World(tmp_path)


def test_a_call_rings_is_answered_and_both_hear_each_other(world: World) -> None:
    a, b = world.phone("101"), world.phone("102")
    call = a.call("102")
    assert b.ringing().invite is not None and call.status == 0
    b.answer()
    assert call.status == 200
    assert world.hears("101") == "102" and world.hears("102") == "101"
    a.hangup(call)
    assert b.calls[0].ended
    world.settled()


def test_both_legs_of_a_call_open_their_streams_in_one_media_group(world: World) -> None:
    a, b = world.phone("101"), world.phone("102")
    call = a.call("102")
    b.answer()
    groups = set(world.engine.groups.values())
    assert len(world.engine.groups) == 2 and len(groups) == 1 and None not in groups
    a.hangup(call)
    world.settled()


def test_saturated_media_threads_refuse_a_new_call_with_503(world: World) -> None:
    a, _b = world.phone("101"), world.phone("102")
    world.engine.admitting = False
    call = a.call("102")
    assert call.status == 503
    assert not world.engine.groups                 # no stream was opened for it
    world.settled()


def test_ring_timeout_runs_on_the_clock_it_is_given(world: World) -> None:
    a, _b = world.phone("101"), world.phone("102")
    call = a.call("102")
    world.advance(19.0)
    assert call.status == 0
    world.advance(2.0)
    assert call.status >= 400  # 102's failover: the caller gets the failure
    world.settled()
