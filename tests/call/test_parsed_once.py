"""What the call layer now keeps instead of recomputing per call (issue 13): the offer an
inbound leg was opened with, one log adapter per call, the SIP event dispatch by type."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from mediasrv.logs import call_logger
from mediasrv.sip.message import Response
from mediasrv.sip.sdp import SessionDescription, negotiate
from tests.call.world import World


@pytest.fixture
def world(tmp_path: Path) -> World:
    return World(tmp_path)


def _record_responses(world: World) -> list[Response]:
    sent: list[Response] = []
    port = world.b2bua.legs.sip
    send = port.send_response

    def recording(txn, response):  # type: ignore[no-untyped-def]
        sent.append(response)
        return send(txn, response)
    port.send_response = recording  # type: ignore[method-assign]
    return sent


def test_the_200_answers_the_offer_the_caller_leg_kept(world: World) -> None:
    a, b = world.phone("101"), world.phone("102")
    sent = _record_responses(world)
    call = a.call("102")
    caller = next(leg for leg in world.b2bua.legs if leg.inbound)
    assert caller.invite is not None and caller.offer is not None
    assert caller.offer == SessionDescription.parse(caller.invite.body)  # the INVITE's own
    b.answer()
    assert call.status == 200
    ok = next(r for r in sent if r.status == 200 and r.body)
    answer = SessionDescription.parse(ok.body)
    assert answer.media[0].port == world.engine.local_port(caller.stream)
    assert negotiate(answer, ["PCMU"], secure=True).codec == "PCMU"
    assert caller.offer is None  # answered: the live call keeps no parse of it (test_bench_gc)
    a.hangup(call)
    world.settled()


def test_a_call_logs_through_one_adapter_that_names_it(world: World,
                                                      caplog: pytest.LogCaptureFixture) -> None:
    a, b = world.phone("101"), world.phone("102")
    call = a.call("102")
    b.answer()
    legs = list(world.b2bua.legs)
    assert len(legs) == 2
    adapters = {id(world.b2bua.legs.log(leg)) for leg in legs}
    assert len(adapters) == 1
    with caplog.at_level(logging.DEBUG, logger="mediasrv.call"):
        a.hangup(call)
    ended = [r for r in caplog.records if "ended" in r.getMessage()]
    assert len(ended) == 2 and {getattr(r, "call_id", None) for r in ended} == {legs[0].call_id}
    world.settled()


def test_a_call_line_with_its_own_extra_keeps_it_and_gets_the_call_id(
        caplog: pytest.LogCaptureFixture) -> None:
    log = call_logger(logging.getLogger("mediasrv.test"), "c-1")
    with caplog.at_level(logging.INFO, logger="mediasrv.test"):
        log.info("plain")
        log.info("with extra", extra={"leg": "leg9"})
    plain, extra = caplog.records
    assert plain.call_id == "c-1" and extra.call_id == "c-1" and extra.leg == "leg9"
