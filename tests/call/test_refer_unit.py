"""REFER transfers (RFC 3515, RFC 5589) on the fake clock: blind, attended, blond, refusals.

Each case runs the real B2BUA and SIP endpoints with in-memory phones (`world.py`), so the
REFER, its 202, the NOTIFY sipfrags and the BYEs are real SIP messages; who hears whom is the
media topology the engine is given.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from mediasrv.call.control import ServiceControl
from mediasrv.config import FailoverAction
from tests.call.world import Phone, PhoneCall, World


@pytest.fixture
def world(tmp_path: Path) -> World:
    return World(tmp_path)


def talking(world: World, a: Phone, b: Phone) -> PhoneCall:
    """`a` calls `b`, `b` answers; `a`'s side of the call."""
    call = a.call(b.number)
    b.answer()
    assert call.status == 200
    return call


def refer_status(phone: Phone) -> int:
    return phone.responses[-1].status


def hold(phone: Phone, call: PhoneCall) -> None:
    phone.request(call, "INVITE", (("Content-Type", "application/sdp"),),
                  phone.sdp().replace(b"sendrecv", b"sendonly"))


# ---------------------------------------------------------------------------- blind


def test_blind_transfer_notifies_and_connects_the_transferred_party(world: World) -> None:
    a, b, c = world.phone("101"), world.phone("102"), world.phone("103")
    ab = talking(world, a, b)
    b.refer(b.calls[0], "103")  # B (the callee) transfers A to C
    assert refer_status(b) == 202
    assert b.notifies[0] == ("active;expires=60", "SIP/2.0 100 Trying")
    assert world.hears("101") == "tone:ringback"
    c.answer()
    assert b.final_notify == "SIP/2.0 200 OK"
    assert world.hears("101") == "103" and world.hears("103") == "101"
    assert b.calls[0].ended  # the transferer is released with a BYE
    assert world.transfer_events()[0] == ("CALLING_TARGET", "start")
    assert ("COMPLETE", "result") in world.transfer_events()
    a.hangup(ab)
    assert c.calls[0].ended
    world.settled()


def test_blind_transfer_to_a_busy_target_reconnects_the_transferer(world: World) -> None:
    a, b, c = world.phone("101"), world.phone("102"), world.phone("103")
    ab = talking(world, a, b)
    c.answer_with = 486
    b.refer(b.calls[0], "103")
    world.advance(0.1)
    assert b.final_notify == "SIP/2.0 486 Busy Here"
    assert world.hears("101") == "102" and not b.calls[0].ended
    a.hangup(ab)
    world.settled()


def test_blind_transfer_goes_on_when_the_transferer_byes_after_the_202(world: World) -> None:
    a, b, c = world.phone("101"), world.phone("102"), world.phone("103")
    ab = talking(world, a, b)
    b.refer(b.calls[0], "103")
    b.hangup(b.calls[0])  # RFC 5589 §6: it usually does
    assert world.hears("101") == "tone:ringback"
    c.answer()
    assert world.hears("101") == "103"
    # its BYE ended the call, not the subscription (RFC 5057): the outcome still reaches it
    assert b.notifies[-1] == ("terminated;reason=noresource", "SIP/2.0 200 OK")
    a.hangup(ab)
    world.settled()


def test_blind_transfer_not_answered_plays_the_failed_tone_then_hangs_up(
        world: World) -> None:
    a, b, _c = world.phone("101"), world.phone("102"), world.phone("103")
    ab = talking(world, a, b)
    b.refer(b.calls[0], "103")
    b.hangup(b.calls[0])
    world.advance(21.0)  # 103's ring timeout; its failover returns: nobody to return to
    assert world.hears("101") == "tone:failed"
    world.advance(2.5)
    assert ab.ended
    world.settled()


@pytest.mark.parametrize("case, status", [
    ("busy", 486), ("declined", 480), ("no answer", 480), ("not registered", 480)])
def test_a_blind_transfer_that_fails_notifies_and_gives_the_call_back(
        world: World, case: str, status: int) -> None:
    a, b = world.phone("101"), world.phone("102")
    if case != "not registered":
        c = world.phone("103")
        c.answer_with = {"busy": 486, "declined": 603, "no answer": 0}[case]
    ab = talking(world, a, b)
    b.refer(b.calls[0], "103")
    world.advance(21.0)
    assert b.final_notify.startswith(f"SIP/2.0 {status} ")
    assert world.transfer_events()[-1] == ("FAIL", "result")
    assert world.hears("101") == "102" and not b.calls[0].ended  # the call is given back
    a.hangup(ab)
    world.settled()


def test_a_blind_transfer_without_a_free_media_port_gives_the_call_back(world: World) -> None:
    a, b, _c = world.phone("101"), world.phone("102"), world.phone("103")
    ab = talking(world, a, b)
    world.engine.ports_left = 0
    b.refer(b.calls[0], "103")
    assert refer_status(b) == 202
    assert b.final_notify == "SIP/2.0 503 Service Unavailable"
    assert world.hears("101") == "102" and world.hears("102") == "101"
    a.hangup(ab)
    world.settled()


def test_a_blind_transfer_follows_the_target_failover(tmp_path: Path) -> None:
    world = World(tmp_path, failover={
        "103": {"not_registered": FailoverAction("forward", "104")}})
    a, b, d = world.phone("101"), world.phone("102"), world.phone("104")
    ab = talking(world, a, b)
    b.refer(b.calls[0], "103")  # 103 is not registered: forwarded to 104
    world.advance(0.1)
    d.answer()
    assert b.final_notify == "SIP/2.0 200 OK"
    assert world.hears("101") == "104"
    a.hangup(ab)
    world.settled()


def test_a_blind_transfer_from_a_held_call_connects_without_hold_music(world: World) -> None:
    a, b, c = world.phone("101"), world.phone("102"), world.phone("103")
    ab = talking(world, a, b)
    hold(b, b.calls[0])
    assert world.hears("101").startswith("moh")
    b.refer(b.calls[0], "103")
    c.answer()
    assert world.hears("101") == "103" and world.hears("103") == "101"
    a.hangup(ab)
    world.settled()


def test_refer_sub_false_gets_no_notify(world: World) -> None:
    a, b, c = world.phone("101"), world.phone("102"), world.phone("103")
    ab = talking(world, a, b)
    b.refer(b.calls[0], "103", extra=(("Refer-Sub", "false"),))
    assert refer_status(b) == 202
    assert b.responses[-1].headers.get("Refer-Sub") == "false"
    c.answer()
    assert b.notifies == [] and world.hears("101") == "103"
    a.hangup(ab)
    world.settled()


@pytest.mark.parametrize("target, status", [("999", 404), ("101", 403)])
def test_refer_to_an_unknown_or_the_same_party_is_refused(world: World, target: str,
                                                           status: int) -> None:
    a, b = world.phone("101"), world.phone("102")
    ab = talking(world, a, b)
    b.refer(b.calls[0], target)
    assert refer_status(b) == status
    assert world.hears("101") == "102"
    a.hangup(ab)
    world.settled()


def test_refer_without_refer_to_is_400(world: World) -> None:
    a, b = world.phone("101"), world.phone("102")
    ab = talking(world, a, b)
    b.request(b.calls[0], "REFER")
    assert refer_status(b) == 400
    a.hangup(ab)
    world.settled()


def test_a_second_refer_while_one_runs_is_603(world: World) -> None:
    a, b, _c = world.phone("101"), world.phone("102"), world.phone("103")
    ab = talking(world, a, b)
    b.refer(b.calls[0], "103")
    b.refer(b.calls[0], "104")
    assert refer_status(b) == 603
    a.hangup(ab)
    world.settled()


def test_the_operator_hanging_up_during_a_refer_transfer_ends_it_for_every_owner(
        world: World) -> None:
    """The API's hang-up goes through call control: the REFER transfer owning the legs is
    told, so it ends (FAIL) and leaves no session behind."""
    a, b, c = world.phone("101"), world.phone("102"), world.phone("103")
    ab = talking(world, a, b)
    b.refer(b.calls[0], "103")
    ServiceControl(world.b2bua).end_from_outside(world.b2bua.legs.of_call(ab.call_id))
    world.advance(1.0)
    assert ab.ended and b.calls[0].ended and c.calls[0].ended  # BYE, BYE, CANCEL
    assert world.transfer_events()[-1] == ("FAIL", "result")
    world.settled()  # no REFER session left


# ---------------------------------------------------------------------------- attended


def test_attended_transfer_joins_the_two_remote_parties_locally(world: World) -> None:
    a, b, c = world.phone("101"), world.phone("102"), world.phone("103")
    talking(world, b, a)  # B called A
    hold(a, a.calls[0])
    assert world.hears("102").startswith("moh")
    consult = talking(world, a, c)
    a.refer(a.calls[0], "103", replaces=a.replaces_for(consult))
    assert refer_status(a) == 202
    assert a.final_notify == "SIP/2.0 200 OK"
    assert world.hears("102") == "103" and world.hears("103") == "102"
    assert consult.ended and a.calls[0].ended
    assert len(c.calls) == 1  # joined here: no new INVITE went to C
    b.hangup(b.calls[0])
    world.settled()


def test_attended_transfer_survives_the_transferer_bye(world: World) -> None:
    a, b, c = world.phone("101"), world.phone("102"), world.phone("103")
    talking(world, b, a)
    consult = talking(world, a, c)
    a.refer(a.calls[0], "103", replaces=a.replaces_for(consult))
    a.hangup(a.calls[0])
    assert world.hears("102") == "103" and world.hears("103") == "102"
    assert consult.ended
    c.hangup(c.calls[0])
    world.settled()


@pytest.mark.parametrize("case, status", [
    ("unknown dialog", 481), ("confirmed but early-only", 486), ("its own dialog", 488)])
def test_attended_refer_naming_a_bad_dialog_gets_the_rfc3891_answer_in_the_notify(
        world: World, case: str, status: int) -> None:
    a, b, c = world.phone("101"), world.phone("102"), world.phone("103")
    talking(world, b, a)
    consult = talking(world, a, c)
    named = {"unknown dialog": "nope@x;to-tag=1;from-tag=2",
             "confirmed but early-only": a.replaces_for(consult, early_only=True),
             "its own dialog": a.replaces_for(a.calls[0])}[case]
    a.refer(a.calls[0], "103", replaces=named)
    assert refer_status(a) == 202
    assert a.final_notify == f"SIP/2.0 {status} " + {
        481: "Call/Transaction Does Not Exist", 486: "Busy Here",
        488: "Not Acceptable Here"}[status]
    assert world.hears("102") == "101"  # the call goes on
    a.hangup(a.calls[0])
    a.hangup(consult)
    world.settled()


# ---------------------------------------------------------------------------- behind a proxy

ELSEWHERE = "c-on-node2@10.0.0.12;to-tag=n2;from-tag=ph"  # a dialog another node holds


def behind_proxy(world: World) -> Phone:
    """A scripted phone standing for the proxy, as `sip.outbound_proxy`: it gets what the
    node sends on."""
    proxy = world.phone("109")
    world.b2bua.config = dataclasses.replace(world.config, sip=dataclasses.replace(
        world.config.sip, outbound_proxy=f"sip:{proxy.addr[0]}:5060"))
    return proxy


@pytest.mark.parametrize("answer, final", [
    (200, "SIP/2.0 200 OK"), (481, "SIP/2.0 481 Call/Transaction Does Not Exist")])
def test_a_refer_naming_a_dialog_of_another_node_is_dialled_with_replaces_via_the_proxy(
        world: World, answer: int, final: str) -> None:
    """RFC 5589 §7 as the transferee: the transferred party dials the Refer-To user with the
    Replaces, through the proxy (which routes it to the node holding the dialog); that
    node's answer, refusal included (RFC 3891 §3), ends the subscription."""
    a, b = world.phone("101"), world.phone("102")
    proxy = behind_proxy(world)
    talking(world, b, a)  # this node holds A's call with B; A's call with C is elsewhere
    a.refer(a.calls[0], "103", replaces=ELSEWHERE)
    assert refer_status(a) == 202
    invite = proxy.ringing().invite
    assert invite is not None and invite.uri == f"sip:103@{proxy.addr[0]}:5060"
    assert invite.headers.get("Replaces") == ELSEWHERE
    assert world.hears("102") == "tone:ringback"
    proxy.answer(status=answer)
    assert a.final_notify == final
    if answer == 200:
        assert world.hears("102") == "103" and world.hears("103") == "102"
        assert a.calls[0].ended
        b.hangup(b.calls[0])
        assert proxy.calls[0].ended
    else:
        assert world.hears("102") == "101"  # A gets the call back
        a.hangup(a.calls[0])
    world.settled()


def test_behind_a_proxy_a_refer_naming_our_own_dialog_is_still_joined_here(
        world: World) -> None:
    a, b, c = world.phone("101"), world.phone("102"), world.phone("103")
    proxy = behind_proxy(world)
    talking(world, b, a)
    consult = talking(world, a, c)
    a.refer(a.calls[0], "103", replaces=a.replaces_for(consult))
    assert a.final_notify == "SIP/2.0 200 OK"
    assert world.hears("102") == "103" and proxy.calls == []
    b.hangup(b.calls[0])
    world.settled()


# ---------------------------------------------------------------------------- blond


@pytest.mark.parametrize("outcome, final", [
    ("answer", "SIP/2.0 200 OK"), ("busy", "SIP/2.0 486 Busy Here"),
    ("no answer", "SIP/2.0 480 Temporarily Unavailable"),
    ("transferred hangs up", "SIP/2.0 487 Request Terminated")])
@pytest.mark.parametrize("early_media", [False, True])
def test_blond_transfer_to_a_ringing_consultation_ends_with_a_final_notify(
        world: World, outcome: str, final: str, early_media: bool) -> None:
    """RFC 5589 §7 before the consultation is answered (the spec's BLOND): the transferer's
    subscription ends with the outcome, whatever it is."""
    a, b, c = world.phone("101"), world.phone("102"), world.phone("103")
    c.early_media = early_media
    talking(world, b, a)  # B called A; A transfers B to C while C still rings
    consult = a.call("103")
    assert consult.status == 0 and consult.remote_tag
    a.refer(a.calls[0], "103", replaces=a.replaces_for(consult))
    assert refer_status(a) == 202
    assert consult.status == 487  # the transferer's own consultation call ends
    assert world.hears("102") == "tone:ringback"
    assert world.transfer_events()[0] == ("BLOND", "start")
    if outcome == "answer":
        c.answer()
        assert world.hears("102") == "103"
    elif outcome == "busy":
        c.answer(status=486)
    elif outcome == "no answer":
        world.advance(21.0)
    else:
        b.hangup(b.calls[0])
    world.advance(3.0)
    assert a.final_notify == final, a.notifies
    for phone in (a, b, c):
        for call in phone.calls:
            if call.dialog is not None and not call.ended:
                phone.hangup(call)
    world.settled()


def test_refer_naming_a_call_ringing_at_the_transferer_answers_it_for_the_party(
        world: World) -> None:
    a, b, c = world.phone("101"), world.phone("102"), world.phone("103")
    talking(world, b, a)
    from_c = c.call("101")  # C calls A; A sends B to that ringing call
    a.refer(a.calls[0], "103", replaces=a.replaces_for(a.ringing()))
    assert refer_status(a) == 202
    assert a.final_notify == "SIP/2.0 200 OK"
    assert from_c.status == 200 and world.hears("103") == "102"
    c.hangup(from_c)
    world.settled()


@pytest.mark.parametrize("outcome, final, transferred_hears", [
    ("answer", "SIP/2.0 200 OK", "103"), ("busy", "SIP/2.0 486 Busy Here", "tone:failed"),
    ("no answer", "SIP/2.0 480 Temporarily Unavailable", "tone:failed")])
def test_blond_transfer_notifies_the_outcome_to_a_transferer_that_hung_up_after_the_202(
        world: World, outcome: str, final: str, transferred_hears: str) -> None:
    """The phone's Transfer key pressed while the consultation still rings: the phone sends
    the REFER and hangs up at once. Its BYE ends the call, not the REFER subscription (RFC
    5057), so the outcome still comes in a NOTIFY that ends the subscription."""
    a, b, c = world.phone("101"), world.phone("102"), world.phone("103")
    talking(world, b, a)  # B called A
    hold(a, a.calls[0])
    consult = a.call("103")
    a.refer(a.calls[0], "103", replaces=a.replaces_for(consult))
    assert refer_status(a) == 202
    a.hangup(a.calls[0])
    assert world.hears("102") == "tone:ringback"
    if outcome == "answer":
        c.answer()
    elif outcome == "busy":
        c.answer(status=486)
    else:
        world.advance(21.0)
    world.advance(0.1)
    assert a.notifies[0] == ("active;expires=60", "SIP/2.0 100 Trying")
    assert a.notifies[-1] == ("terminated;reason=noresource", final), a.notifies
    assert world.hears("102") == transferred_hears
    if outcome == "answer":
        assert world.hears("103") == "102"
        c.hangup(c.calls[0])
    assert b.calls[0].ended == (outcome == "answer")
    world.settled()  # the failed tone, then B is let go; no subscription left


@pytest.mark.parametrize("consultation", ["ringing", "answered"])
def test_refer_naming_the_far_side_of_the_consultation_transfers_to_the_consulted_party(
        world: World, consultation: str) -> None:
    """The Replaces names the consultation's dialog between the server and C (the ids the
    server holds towards C) instead of the transferer's own: it is the same consultation,
    so B is sent to C, not back to the transferer."""
    a, b, c = world.phone("101"), world.phone("102"), world.phone("103")
    talking(world, b, a)
    consult = a.call("103")
    at_c = c.calls[0]
    if consultation == "answered":
        c.answer(at_c)
    a.refer(a.calls[0], "103", replaces=c.replaces_for(at_c))
    assert refer_status(a) == 202
    assert consult.status == (487 if consultation == "ringing" else 200)
    if consultation == "ringing":
        assert world.hears("102") == "tone:ringback"
        c.answer(at_c)
    assert a.final_notify == "SIP/2.0 200 OK"
    assert world.hears("102") == "103" and world.hears("103") == "102"
    assert a.calls[0].ended and consult.ended
    c.hangup(at_c)
    world.settled()


def test_a_transfer_ringing_past_the_subscription_expiry_ends_it_with_a_timeout(
        tmp_path: Path) -> None:
    """The implicit subscription lasts 60 s (RFC 3515 §2.4.4): when the target still rings
    then, the last NOTIFY ends it (RFC 6665, reason=timeout) instead of leaving the
    phone waiting; the transfer itself goes on."""
    world = World(tmp_path, ring_timeout=90.0)
    a, b, c = world.phone("101"), world.phone("102"), world.phone("103")
    ab = talking(world, a, b)
    b.refer(b.calls[0], "103")
    world.advance(59.0)
    assert b.notifies == [("active;expires=60", "SIP/2.0 100 Trying")]
    world.advance(2.0)
    assert b.notifies[-1] == ("terminated;reason=timeout", "SIP/2.0 100 Trying")
    c.answer()
    assert world.hears("101") == "103" and len(b.notifies) == 2
    a.hangup(ab)
    world.settled()


@pytest.mark.parametrize("action, hears", [
    (FailoverAction("announce", prompt="unavailable"), "prompt:en/unavailable"),
    (FailoverAction("voicemail"), "prompt:en/vm-greeting")])
def test_a_blind_transfer_not_answered_runs_the_target_failover_for_the_transferred_party(
        tmp_path: Path, action: FailoverAction, hears: str) -> None:
    """The same outcome as `#1` (one implementation): the target's failover runs for the
    transferred party and the transferer, told 480, is released."""
    world = World(tmp_path, failover={"103": {"no_answer": action}})
    a, b, _c = world.phone("101"), world.phone("102"), world.phone("103")
    ab = talking(world, a, b)
    b.refer(b.calls[0], "103")
    world.advance(21.0)
    assert b.final_notify == "SIP/2.0 480 Temporarily Unavailable"
    assert b.calls[0].ended
    assert world.hears("101") == hears
    if action.action == "announce":
        world.prompt_played("101")
        assert ab.ended  # let go after the prompt
    else:
        world.prompt_played("101")  # the greeting, then the beep
        world.prompt_played("101")
        assert "103" in list(world.engine.recording.values())[0]  # a message for 103
        a.hangup(ab)
    world.settled()
