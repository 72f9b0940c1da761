"""Attended transfer, every path of shared/specs/attended-transfer.md, on the fake call model.

Each test scripts the users' key presses and the far ends' answers and hang-ups, and asserts
who hears whom after each step, the published states, and that nothing leaked.
"""

from __future__ import annotations

import dataclasses

import pytest

from mediasrv.call.api import LegFailed, LegHungUp
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


# --------------------------------------------------------------------------- cancel


def test_cancel_while_ringing(world: World) -> None:
    start(world)
    a = dial(world)
    world.fake.press(world.t, "*0")
    assert a.id in world.fake.hangups
    assert world.hears(world.x) == world.t.id  # MoH stopped
    assert_rebridged(world)


def test_cancel_while_failover_announces(world: World) -> None:
    start(world)
    a = dial(world, "103")
    world.fake.fail(a, "busy")  # 103: busy -> announce "busy"
    assert world.hears(world.t) == "prompt:busy"
    assert world.hears(world.x) == "moh:default"
    world.fake.press(world.t, "*0")
    assert_rebridged(world)


def test_cancel_while_voicemail_records(world: World) -> None:
    start(world)
    a = dial(world, "103")
    world.fake.fail(a, "no_answer")  # 103: no_answer -> voicemail
    assert world.hears(world.t) == "voicemail:103"
    assert world.fake.states()[-1] == "VOICEMAIL"
    world.fake.press(world.t, "*0")
    assert_rebridged(world)


def test_cancel_after_answer(world: World) -> None:
    a = consult(world)
    world.fake.press(world.t, "*0")
    assert a.ended and a.id in world.fake.hangups
    assert_rebridged(world)


# --------------------------------------------------------------------------- swap


def test_swap_while_ringing_and_back(world: World) -> None:
    start(world)
    a = dial(world)
    world.fake.press(world.t, "*9")
    assert world.fake.talking(world.t, world.x)
    assert world.hears(a) == "nothing" and not a.ended  # still rings
    assert world.fake.states()[-1] == "HESITANT"
    world.fake.press(world.t, "*9")
    assert world.hears(world.t) == "tone:ringback"
    assert world.hears(world.x) == "moh:default"
    assert world.fake.states()[-1] == "CALLING_TARGET"


def test_answer_while_hesitant_holds_the_addressee(world: World) -> None:
    start(world)
    a = dial(world)
    world.fake.press(world.t, "*9")
    world.fake.answer(a)
    assert world.fake.states()[-1] == "DOUBLECHECKING"
    assert world.fake.talking(world.t, world.x)
    assert world.hears(a) == "moh:default"
    world.fake.press(world.t, "*9")
    assert world.fake.talking(world.t, a)
    assert world.hears(world.x) == "moh:default"
    assert world.fake.states()[-1] == "CONSULTING"


def test_swap_after_answer_and_back(world: World) -> None:
    a = consult(world)
    world.fake.press(world.t, "*9")
    assert world.fake.states()[-1] == "DOUBLECHECKING"
    assert world.fake.talking(world.t, world.x)
    assert world.hears(a) == "moh:default"
    world.fake.press(world.t, "*9")
    assert world.fake.states()[-1] == "CONSULTING"
    assert world.fake.talking(world.t, a)
    assert world.hears(world.x) == "moh:default"


def test_complete_from_doublechecking(world: World) -> None:
    a = consult(world)
    world.fake.press(world.t, "*9")
    world.fake.far_hangup(world.t)
    assert world.fake.talking(world.x, a)
    assert world.fake.states()[-1] == "COMPLETE"
    world.assert_clean()


# --------------------------------------------------------------------------- three-way


def three_way(w: World) -> FakeLeg:
    a = consult(w)
    w.fake.press(w.t, "*3")
    assert w.fake.states()[-1] == "THREEWAY"
    assert w.hears(w.t) == "+".join(sorted([w.x.id, a.id]))
    assert w.hears(w.x) == "+".join(sorted([w.t.id, a.id]))
    assert w.hears(a) == "+".join(sorted([w.t.id, w.x.id]))
    return a


def test_three_way_from_doublechecking(world: World) -> None:
    a = consult(world)
    world.fake.press(world.t, "*9*3")
    assert world.hears(a) == "+".join(sorted([world.t.id, world.x.id]))


def test_three_way_transferer_hangs_up(world: World) -> None:
    a = three_way(world)
    world.fake.far_hangup(world.t)
    assert world.fake.talking(world.x, a)
    assert world.fake.states()[-1] == "COMPLETE"
    world.assert_clean()


def test_three_way_transferred_hangs_up(world: World) -> None:
    a = three_way(world)
    world.fake.far_hangup(world.x)
    assert world.fake.talking(world.t, a)
    assert world.fake.states()[-1] == "CONSULTATION_KEPT"
    world.assert_clean()


def test_three_way_addressee_hangs_up(world: World) -> None:
    three_way(world)
    a = world.fake.legs[[leg for leg in world.fake.legs if leg.startswith("out")][-1]]
    world.fake.far_hangup(a)
    assert_rebridged(world)


def test_cancel_in_three_way_drops_the_addressee(world: World) -> None:
    a = three_way(world)
    world.fake.press(world.t, "*0")
    assert a.id in world.fake.hangups
    assert_rebridged(world)


def test_swap_in_three_way_goes_back_to_consulting(world: World) -> None:
    a = three_way(world)
    world.fake.press(world.t, "*9")
    assert world.fake.talking(world.t, a)
    assert world.hears(world.x) == "moh:default"


def test_three_way_while_ringing_is_ignored(world: World) -> None:
    start(world)
    dial(world)
    world.fake.press(world.t, "*3")
    assert world.fake.states()[-1] == "CALLING_TARGET"
    assert world.hears(world.t) == "tone:ringback"


# --------------------------------------------------------------------------- hang-ups


@pytest.mark.parametrize("swapped", [False, True])
def test_addressee_hangs_up_during_consultation(world: World, swapped: bool) -> None:
    a = consult(world)
    if swapped:
        world.fake.press(world.t, "*9")
    world.fake.far_hangup(a)
    assert_rebridged(world)


def test_transferred_hangs_up_after_answer(world: World) -> None:
    a = consult(world)
    world.fake.far_hangup(world.x)
    assert world.fake.talking(world.t, a)
    assert world.fake.states()[-1] == "CONSULTATION_KEPT"
    world.assert_clean()


@pytest.mark.parametrize("swapped", [False, True])
def test_transferred_hangs_up_while_ringing(world: World, swapped: bool) -> None:
    start(world)
    a = dial(world)
    if swapped:
        world.fake.press(world.t, "*9")
    world.fake.far_hangup(world.x)
    assert world.hears(world.t) == "tone:ringback"  # T keeps the ringing call
    assert world.fake.states()[-1] == "TARGET_CALL"
    world.fake.answer(a)
    assert world.fake.talking(world.t, a)
    assert world.fake.states()[-1] == "CONSULTATION_KEPT"
    world.assert_clean()


def test_transferred_left_and_addressee_fails(world: World) -> None:
    start(world)
    a = dial(world, "103")
    world.fake.far_hangup(world.x)
    world.fake.fail(a, "busy")  # announce "busy" to T, then T is hung up
    assert world.hears(world.t) == "prompt:busy"
    world.fake.prompt_done(world.t)
    assert world.t.ended
    world.assert_clean()


def test_transferred_left_then_cancel(world: World) -> None:
    start(world)
    a = dial(world)
    world.fake.far_hangup(world.x)
    world.fake.press(world.t, "*0")
    assert a.ended and world.hears(world.t) == "tone:failed"
    world.fake.advance(2.0)
    assert world.t.ended
    world.assert_clean()


def test_transferer_hangs_up_while_dialling(world: World) -> None:
    start(world)
    world.fake.press(world.t, "10")
    world.fake.far_hangup(world.t)
    assert world.x.ended and world.fake.states()[-1] == "FAIL"
    world.assert_clean()


def test_transferred_hangs_up_while_dialling(world: World) -> None:
    start(world)
    world.fake.far_hangup(world.x)
    assert world.hears(world.t) == "tone:failed"
    world.fake.advance(2.0)
    assert world.t.ended
    assert world.fake.dials == []
    world.assert_clean()


# --------------------------------------------------------------------------- blond


def test_blond_complete(world: World) -> None:
    start(world)
    a = dial(world)
    world.fake.far_hangup(world.t)
    assert world.hears(world.x) == "tone:ringback"
    assert world.fake.states()[-1] == "BLOND"
    world.fake.answer(a)
    assert world.fake.talking(world.x, a)
    assert world.fake.states()[-1] == "COMPLETE"
    world.assert_clean()


@pytest.mark.parametrize(("condition", "hears"), [
    ("busy", "prompt:busy"), ("no_answer", "voicemail:103"), ("not_registered", "tone:failed")])
def test_blond_complete_then_addressee_fails(world: World, condition: str, hears: str) -> None:
    start(world)
    a = dial(world, "103")
    world.fake.far_hangup(world.t)
    world.fake.fail(a, condition)  # the addressee's failover runs for the transferred party
    assert world.hears(world.x) == hears
    assert world.fake.states()[-1] == "FAIL"
    if hears.startswith("prompt"):
        world.fake.prompt_done(world.x)
    elif hears.startswith("tone"):
        world.fake.advance(2.0)
    else:
        world.fake.far_hangup(world.x)  # leaves a message and hangs up
    assert world.x.ended
    world.assert_clean()


def test_blond_transferred_hangs_up_while_ringing(world: World) -> None:
    start(world)
    a = dial(world)
    world.fake.far_hangup(world.t)
    world.fake.far_hangup(world.x)
    assert a.ended and a.id in world.fake.hangups
    world.assert_clean()


def test_blond_recall() -> None:
    w = make_world(service_config("attended_transfer", behaviour={"blond": "recall"}))
    start(w)
    a = dial(w)
    w.fake.far_hangup(w.t)
    assert a.ended and a.id in w.fake.hangups
    assert w.fake.dials[-1] == ("100", "X", "transfer recall")
    assert w.hears(w.x) == "tone:ringback"
    assert w.fake.states()[-1] == "RECALLING"
    r = w.fake.legs[[leg for leg in w.fake.legs if leg.startswith("out")][-1]]
    w.fake.answer(r)
    assert w.fake.talking(w.x, r)
    assert w.fake.states()[-1] == "REBRIDGE"
    w.assert_clean()


def test_blond_recall_fails_runs_the_transferers_failover() -> None:
    w = make_world(service_config("attended_transfer", behaviour={"blond": "recall"}))
    start(w)
    dial(w)
    w.fake.far_hangup(w.t)
    r = w.fake.legs[[leg for leg in w.fake.legs if leg.startswith("out")][-1]]
    w.fake.fail(r, "no_answer")  # 100: no_answer -> return: nobody to return to
    assert w.hears(w.x) == "tone:failed"
    w.fake.advance(2.0)
    assert w.x.ended
    w.assert_clean()


def test_blond_cancel() -> None:
    w = make_world(service_config("attended_transfer", behaviour={"blond": "cancel"}))
    start(w)
    a = dial(w)
    w.fake.far_hangup(w.t)
    assert a.ended and w.x.ended
    assert w.fake.states()[-1] == "FAIL"
    w.assert_clean()


# --------------------------------------------------------------------------- failover


def test_failover_return_reconnects_at_once(world: World) -> None:
    start(world)
    a = dial(world)
    world.fake.fail(a, "busy")  # 102: return
    assert_rebridged(world)


def test_failover_announce_then_reconnect(world: World) -> None:
    start(world)
    a = dial(world, "103")
    world.fake.fail(a, "busy")
    assert world.hears(world.t) == "prompt:busy"
    assert world.fake.states()[-1] == "ANNOUNCING"
    world.fake.prompt_done(world.t)
    assert_rebridged(world)


def test_failover_hangup_plays_failed_tone_then_reconnects(world: World) -> None:
    start(world)
    a = dial(world, "103")
    world.fake.fail(a, "not_registered", status=480)
    assert world.hears(world.t) == "tone:failed"
    world.fake.advance(1.9)
    assert world.hears(world.t) == "tone:failed"
    world.fake.advance(0.1)
    assert_rebridged(world)


def test_failover_voicemail_then_transferer_hangs_up(world: World) -> None:
    start(world)
    a = dial(world, "103")
    world.fake.fail(a, "no_answer")
    assert world.hears(world.t) == "voicemail:103"
    world.fake.far_hangup(world.t)  # message left; nobody is left for X
    assert world.x.ended
    world.assert_clean()


def test_failover_announce_in_hesitant_holds_the_transferred(world: World) -> None:
    start(world)
    a = dial(world, "103")
    world.fake.press(world.t, "*9")
    world.fake.fail(a, "busy")
    assert world.hears(world.t) == "prompt:busy"
    assert world.hears(world.x) == "moh:default"
    world.fake.prompt_done(world.t)
    assert_rebridged(world)


def test_transferer_hangs_up_during_announcement(world: World) -> None:
    start(world)
    a = dial(world, "103")
    world.fake.fail(a, "busy")
    world.fake.far_hangup(world.t)
    assert world.x.ended
    world.assert_clean()


def test_transferred_hangs_up_during_announcement(world: World) -> None:
    start(world)
    a = dial(world, "103")
    world.fake.fail(a, "busy")
    world.fake.far_hangup(world.x)
    assert world.hears(world.t) == "prompt:busy"
    world.fake.prompt_done(world.t)
    assert world.t.ended
    world.assert_clean()


# --------------------------------------------------------------------------- dialling


def test_number_ends_with_the_inter_digit_timeout(world: World) -> None:
    start(world)
    world.fake.press(world.t, "102")
    world.fake.advance(1.9)
    assert world.fake.dials == []
    world.fake.advance(0.1)
    assert world.fake.dials == [("102", "T", "attended transfer")]


def test_number_timer_restarts_at_each_digit(world: World) -> None:
    start(world)
    world.fake.press(world.t, "10")
    world.fake.advance(1.5)
    world.fake.press(world.t, "2")
    world.fake.advance(1.5)
    assert world.fake.dials == []
    world.fake.advance(0.5)
    assert world.fake.dials[-1][0] == "102"


def test_a_digit_stops_the_prompt_and_counts(world: World) -> None:
    start(world)
    world.fake.press(world.t, "1")
    assert world.hears(world.t) == "silence"
    world.fake.press(world.t, "02#")
    assert world.fake.dials[-1][0] == "102"


def test_the_pause_timer_starts_after_the_prompt(world: World) -> None:
    start(world)
    world.fake.advance(5.0)  # the prompt is still playing: no timeout yet
    assert world.hears(world.t) == "prompt:transfer"
    world.fake.prompt_done(world.t)
    world.fake.advance(2.0)  # nothing dialled: an empty number
    assert world.hears(world.t) == "prompt:invalid"


@pytest.mark.parametrize("bad", ["999", "", "100", "101", "10*"])
def test_invalid_number_then_retry(world: World, bad: str) -> None:
    start(world)
    world.fake.press(world.t, bad + "#")
    assert world.hears(world.t) == "prompt:invalid"
    assert world.hears(world.x) == "moh:default"
    world.fake.press(world.t, "102#")
    assert world.fake.dials[-1][0] == "102"


def test_last_invalid_try_reconnects(world: World) -> None:
    start(world)
    world.fake.press(world.t, "999#")
    world.fake.press(world.t, "#")
    assert world.fake.states()[-1] == "COLLECTING"
    world.fake.press(world.t, "998#")
    assert world.fake.dials == []
    assert_rebridged(world)


def test_dial_attempts_is_configurable() -> None:
    w = make_world(service_config("attended_transfer", timers={"dial_attempts": 1}))
    start(w)
    w.fake.press(w.t, "999#")
    assert_rebridged(w)


# --------------------------------------------------------------------------- MoH and digits


def test_moh_class_of_the_service_wins() -> None:
    w = make_world(service_config("attended_transfer", behaviour={"moh_class": "opera"}))
    start_code(w, "#4")
    assert w.hears(w.x) == "moh:opera"


def test_moh_class_of_the_held_extension() -> None:
    w = make_world(service_config("attended_transfer"))
    w.x = w.fake.new_leg("X5", "105")  # 105 has moh_class = "jazz"
    start_code(w, "#4")
    assert w.hears(w.x) == "moh:jazz"


def start_code(w: World, code: str) -> None:
    w.connect()
    w.fake.press(w.t, code)


def test_transferer_digits_reach_the_party_it_talks_to(world: World) -> None:
    a = consult(world)
    world.fake.press(world.t, "5")
    assert world.fake.sent == [(a.id, "5")]
    world.fake.press(world.t, "*9")
    world.fake.press(world.t, "7")
    assert world.fake.sent[-1] == ("X", "7")
    world.fake.press(world.t, "*3")
    world.fake.press(world.t, "8")
    assert sorted(world.fake.sent[-2:]) == sorted([(a.id, "8"), ("X", "8")])


def test_in_session_code_prefix_is_held_then_sent_on(world: World) -> None:
    a = consult(world)
    world.fake.press(world.t, "*", source="inband")
    assert world.fake.muted == {"T": True} and world.fake.sent == []
    world.fake.advance(1.0)
    assert world.fake.sent == [(a.id, "*")]
    assert world.fake.muted == {"T": False}
    world.fake.press(world.t, "*5")
    assert world.fake.sent[-1] == (a.id, "*5")


def test_changed_session_codes() -> None:
    w = make_world(service_config("attended_transfer",
                                  codes={"cancel": "**", "swap": "*7", "three_way": "*8"}))
    start_code(w, "#4")
    w.fake.press(w.t, "102#")
    a = w.fake.legs[[leg for leg in w.fake.legs if leg.startswith("out")][-1]]
    w.fake.answer(a)
    w.fake.press(w.t, "*9")
    assert w.fake.talking(w.t, a)  # *9 is no code here
    w.fake.press(w.t, "*7")
    assert w.fake.talking(w.t, w.x)
    w.fake.press(w.t, "**")
    assert_rebridged(w)


def test_failover_action_forward_is_not_the_services_business(world: World) -> None:
    # The call layer follows "forward"; if one ever reached the service it acts as "return".
    start(world)
    a = dial(world)
    world.fake.feed(LegFailed(a, "busy", FailoverAction("forward", to="102"), 486))
    assert_rebridged(world)


def test_leaving_the_dialling_phase_stops_the_number_timer(world: World) -> None:
    start(world)
    world.fake.press(world.t, "10")
    world.fake.far_hangup(world.x)
    assert world.fake.pending_timers == 1  # only the "failed" tone's
    world.fake.advance(2.0)
    assert world.fake.dials == [] and world.t.ended
    world.assert_clean()


def test_events_may_carry_a_new_object_for_the_same_leg(world: World) -> None:
    a = consult(world)
    world.fake.hangup(world.t)  # the far side's BYE, reported with a fresh leg object
    world.fake.feed(LegHungUp(dataclasses.replace(world.t)))
    assert world.fake.talking(world.x, a)
    assert world.fake.states()[-1] == "COMPLETE"
