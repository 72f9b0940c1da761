"""The service host: start-code matching per leg, pass-through, one service per call, reload."""

from __future__ import annotations

from .conftest import World, extension, make_world, service_config


def test_only_legs_that_may_start_a_service_are_held_back(world: World) -> None:
    ext = world.fake.new_leg("E", "5551234", internal=False)
    none = world.fake.new_leg("N", "104")  # services = []
    direct = world.fake.new_leg("D", "107")  # direct media: its DTMF never reaches us
    world.connect(world.t, ext)
    world.connect(none, world.x)
    world.connect(direct, world.fake.new_leg("Y", "102"))
    assert world.fake.held_back == {"T", "X", "Y"}


def test_ordinary_digits_pass_at_once(world: World) -> None:
    world.connect()
    world.fake.press(world.t, "5")
    world.fake.press(world.x, "1")
    assert world.fake.sent == [("X", "5"), ("T", "1")]


def test_held_digit_goes_on_after_the_feature_timeout(world: World) -> None:
    world.connect()
    world.fake.press(world.t, "#")
    world.fake.advance(0.9)
    assert world.fake.sent == []
    world.fake.advance(0.1)
    assert world.fake.sent == [("X", "#")]
    world.assert_clean()


def test_a_non_code_sequence_goes_on_at_once(world: World) -> None:
    world.connect()
    world.fake.press(world.t, "#5")
    assert world.fake.sent == [("X", "#5")]
    assert world.fake.pending_timers == 0


def test_repeated_prefix_sends_one_and_still_matches(world: World) -> None:
    world.connect()
    world.fake.press(world.t, "##4")
    assert world.fake.sent == [("X", "#")]
    assert world.hears(world.t) == "prompt:transfer"


def test_inband_code_is_muted_while_pending(world: World) -> None:
    world.connect()
    world.fake.press(world.t, "#", source="inband")
    assert world.fake.muted == {"T": True}
    world.fake.press(world.t, "9", source="inband")
    assert world.fake.muted == {"T": False}
    assert world.fake.sent == [("X", "#9")]


def test_feature_digit_timeout_is_configurable() -> None:
    w = make_world(service_config("attended_transfer", timers={"feature_digit_timeout": 3.0}))
    w.connect()
    w.fake.press(w.t, "#")
    w.fake.advance(2.9)
    assert w.fake.sent == []
    w.fake.advance(0.1)
    assert w.fake.sent == [("X", "#")]


def test_disabled_service_digits_pass_through() -> None:
    w = make_world(service_config("attended_transfer", enabled=False),
                   service_config("blind_transfer"))
    w.connect()
    w.fake.press(w.t, "#4")
    assert w.fake.sent == [("X", "#4")]
    assert w.hears(w.t) == "X"
    assert w.fake.published == []


def test_no_enabled_service_leaves_dtmf_to_the_engine() -> None:
    w = make_world(service_config("attended_transfer", enabled=False))
    w.connect()
    assert w.fake.held_back == set()
    w.fake.press(w.t, "#4")
    assert w.fake.sent == [("X", "#"), ("X", "4")]  # forwarded by the "engine", one by one
    assert w.fake.published == []


def test_changed_start_code() -> None:
    w = make_world(service_config("attended_transfer", codes={"start": "*55"}))
    w.connect()
    w.fake.press(w.t, "#4")
    assert w.fake.sent_to("X") == "#4"
    w.fake.press(w.t, "*55")
    assert w.hears(w.t) == "prompt:transfer"


def test_external_leg_cannot_start_a_transfer(world: World) -> None:
    ext = world.fake.new_leg("E", "5551234", internal=False)
    world.connect(ext, world.x)
    world.fake.press(ext, "#4")
    assert world.fake.sent == [("X", "#"), ("X", "4")]  # the engine forwards them
    assert world.fake.published == [] and world.fake.owners == {}


def test_extension_without_the_service_passes_its_code(world: World) -> None:
    only_blind = world.fake.new_leg("B", "106")  # services = ["blind_transfer"]
    world.connect(only_blind, world.x)
    world.fake.press(only_blind, "#4")
    assert world.fake.sent == [("X", "#4")]
    world.fake.press(only_blind, "#1")
    assert world.hears(only_blind) == "prompt:transfer"
    assert world.fake.published[-1][2]["service"] == "blind_transfer"


def test_one_transfer_per_call(world: World) -> None:
    world.connect()
    world.fake.press(world.t, "#4")
    world.fake.press(world.x, "#4")  # X is internal too, but the call is taken
    assert world.hears(world.x) == "moh:default"
    assert [f["service"] for _, _, f in world.fake.published] == ["attended_transfer"]
    world.fake.press(world.t, "102#")
    world.fake.press(world.t, "*9")  # HESITANT: T and X talk, X's digits reach T
    world.fake.press(world.x, "#4")
    assert world.fake.sent_to("T") == "#4"
    assert world.fake.states()[-1] == "HESITANT"


def test_pending_digit_of_the_other_party_is_flushed_when_a_session_starts(
        world: World) -> None:
    world.connect()
    world.fake.press(world.x, "*")  # not a start code prefix: goes on at once
    world.fake.press(world.x, "#")
    world.fake.press(world.t, "#4")
    assert world.fake.sent == [("T", "*"), ("T", "#")]
    world.fake.advance(5)
    assert world.fake.sent == [("T", "*"), ("T", "#")]


def test_hang_up_cancels_pending_digits(world: World) -> None:
    world.connect()
    world.fake.press(world.t, "#")
    world.fake.far_hangup(world.t)
    assert world.fake.pending_timers == 0
    world.fake.advance(2)
    assert world.fake.sent == []


def test_reload_applies_to_new_calls_only(world: World) -> None:
    world.connect()
    world.host.configure([service_config("attended_transfer", codes={"start": "*44"})])
    world.fake.press(world.t, "#4")  # the call up before the reload keeps "#4"
    assert world.hears(world.t) == "prompt:transfer"
    t2, x2 = world.fake.new_leg("T2", "102"), world.fake.new_leg("X2", "103")
    world.connect(t2, x2)
    world.fake.press(t2, "#4")
    assert world.fake.sent_to("X2") == "#4"
    world.fake.press(t2, "*44")
    assert world.hears(t2) == "prompt:transfer"
    world.fake.press(world.t, "999#999#999#")  # the old session ends on the old instance
    assert world.fake.talking(world.t, world.x)
    assert world.host._retired == []


def test_after_the_session_the_legs_get_codes_again(world: World) -> None:
    world.connect()
    world.fake.press(world.t, "#4")
    world.fake.press(world.t, "#" * 3)  # three empty numbers: reconnect
    assert world.fake.talking(world.t, world.x)
    world.fake.press(world.x, "#1")
    assert world.hears(world.x) == "prompt:transfer"
    assert world.hears(world.t) == "moh:default"


def test_start_codes_are_worked_out_once_per_extension_object(world: World) -> None:
    world.connect()
    t2, x2 = world.fake.new_leg("T2", "100"), world.fake.new_leg("X2", "101")
    world.connect(t2, x2)
    matchers = world.host._matchers
    assert matchers["T"].codes is matchers["T2"].codes  # one Codes for extension 100
    # the extension reloaded with other rights: worked out anew, not the 100 of before
    world.fake.exts = {**world.fake.exts, "100": extension("100", services=("blind_transfer",))}
    t3 = world.fake.new_leg("T3", "100")
    world.connect(t3, world.fake.new_leg("X3", "102"))
    world.fake.press(t3, "#4")
    assert world.fake.sent_to("X3") == "#4"
    world.fake.press(t3, "#1")
    assert world.hears(t3) == "prompt:transfer"
