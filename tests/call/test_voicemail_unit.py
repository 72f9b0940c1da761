"""Voicemail reached from inside a service on the fake clock: the greeting, the beep and the
recording follow each other whoever owns the leg (the call layer's own sequence)."""

from __future__ import annotations

from pathlib import Path

import pytest

from mediasrv.config import FailoverAction
from tests.call.world import SHIPPED, World


@pytest.fixture
def world(tmp_path: Path) -> World:
    world = World(tmp_path, failover={"103": {"busy": FailoverAction("voicemail")}})
    world.services.configure(SHIPPED.services.values())  # the shipped plugins: #4, #1
    return world


def test_attended_transfer_to_a_busy_addressee_records_the_transferer_in_its_mailbox(
        world: World) -> None:
    """#4, the addressee busy, its failover voicemail: the transferer (still owned by the
    transfer, `*0` would take it back) hears the greeting, the beep, and is recorded."""
    a, b, c = world.phone("101"), world.phone("102"), world.phone("103")
    ab = a.call("102")
    b.answer()
    world.dtmf("102", "#4")
    assert world.hears("102") == "prompt:en/transfer"
    world.dtmf("102", "103")
    world.advance(6.0)  # the digit timeout ends the number
    c.answer(status=486)
    assert world.hears("102") == "prompt:en/vm-greeting"
    assert world.leg("102").owner is not None  # the transfer session still owns it
    world.prompt_played("102")
    assert world.hears("102") == "prompt:en/beep"
    world.prompt_played("102")
    assert "103" in next(iter(world.engine.recording.values()))  # a message for 103
    a.hangup(ab)
    b.hangup(b.calls[0])
    world.settled()


def test_a_blind_transfer_to_a_busy_addressee_records_the_transferred_party(
        world: World) -> None:
    """#1, the same failover: the transferred party is recorded in 103's mailbox."""
    a, b, c = world.phone("101"), world.phone("102"), world.phone("103")
    ab = a.call("102")
    b.answer()
    world.dtmf("102", "#1")
    world.dtmf("102", "103")
    world.advance(6.0)
    assert b.calls[0].ended  # the transferer left once the number was dialled
    c.answer(status=486)
    assert world.hears("101") == "prompt:en/vm-greeting"
    world.prompt_played("101")
    world.prompt_played("101")
    assert "103" in next(iter(world.engine.recording.values()))
    a.hangup(ab)
    world.settled()
