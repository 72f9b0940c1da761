"""RFC 4733 telephone-events: payload format, receiver de-duplication, sender sequence.

Receiver and sender tests run on the kernel and on the Python references in reference.py.
"""

from __future__ import annotations

import struct

import pytest
from hypothesis import given
from hypothesis import strategies as st
from reference import Rfc4733Reference, load_media, rfc4733_packets_reference

_media = load_media()
DIGITS = "0123456789*#ABCD"


@pytest.fixture(params=["kernel", "reference"])
def receiver(request: pytest.FixtureRequest) -> type:
    return _media.Rfc4733Receiver if request.param == "kernel" else Rfc4733Reference


@pytest.fixture(params=["kernel", "reference"])
def packets(request: pytest.FixtureRequest):
    return _media.rfc4733_packets if request.param == "kernel" else rfc4733_packets_reference


def payload(event: int, end: bool, duration: int, volume: int = 10) -> bytes:
    """Reference packer straight from RFC 4733 §2.3's figure."""
    return struct.pack("!BBH", event, (0x80 if end else 0) | volume, duration)


@given(st.integers(0, 255), st.booleans(), st.integers(0, 63), st.integers(0, 0xFFFF))
def test_pack_matches_the_wire_format_and_unpacks_back(event, end, volume, duration) -> None:
    data = _media.pack_event(event, end, volume, duration)
    assert data == payload(event, end, duration, volume)
    assert _media.unpack_event(data) == (event, end, volume, duration)


def test_unpack_ignores_reserved_bit_and_rejects_short() -> None:
    assert _media.unpack_event(b"\x0b\xca\x01\x00\xff") == (11, True, 10, 256)
    with pytest.raises(ValueError):
        _media.unpack_event(b"\x01\x02\x03")
    with pytest.raises(ValueError):
        _media.pack_event(1, False, 64, 0)


def send(rx, ts: int, packets: list[bytes]) -> list:
    return [d for p in packets for d in rx.packet(ts, p)]


def test_digit_reported_once_at_end_despite_three_end_packets(receiver: type) -> None:
    rx = receiver()
    pkts = [payload(5, False, d) for d in (160, 320, 480)] + [payload(5, True, 640)] * 3
    assert send(rx, 1000, pkts[:3]) == []
    assert send(rx, 1000, pkts[3:]) == [("5", 1000, 640)]
    assert rx.flush() == []


@pytest.mark.parametrize("event", range(16))
def test_events_map_to_digits(receiver: type, event: int) -> None:
    rx = receiver()
    assert send(rx, 7, [payload(event, True, 800)]) == [(DIGITS[event], 7, 800)]


def test_lost_end_packets_new_timestamp_ends_previous(receiver: type) -> None:
    rx = receiver()
    assert send(rx, 1000, [payload(1, False, 160), payload(1, False, 320)]) == []
    assert send(rx, 3000, [payload(2, False, 160)]) == [("1", 1000, 320)]
    assert send(rx, 3000, [payload(2, True, 480)]) == [("2", 3000, 480)]


def test_late_packets_of_a_finished_event_are_dropped(receiver: type) -> None:
    rx = receiver()
    send(rx, 1000, [payload(1, True, 400)])
    send(rx, 2000, [payload(2, False, 160)])
    assert send(rx, 1000, [payload(1, True, 400), payload(1, False, 160)]) == []
    assert send(rx, 2000, [payload(2, True, 320)]) == [("2", 2000, 320)]


def test_long_press_reported_at_limit_and_not_again(receiver: type) -> None:
    rx = receiver(long_limit=16000)
    updates = [payload(0, False, d) for d in range(160, 16000, 160)]
    assert send(rx, 5, updates) == []
    assert send(rx, 5, [payload(0, False, 16000)]) == [("0", 5, 16000)]
    assert send(rx, 5, [payload(0, False, 20000)] + [payload(0, True, 24000)] * 3) == []


def test_same_digit_twice_has_two_timestamps_and_two_reports(receiver: type) -> None:
    rx = receiver()
    got = send(rx, 100, [payload(9, True, 800)] * 3) + send(rx, 2000, [payload(9, True, 800)] * 3)
    assert got == [("9", 100, 800), ("9", 2000, 800)]


def test_timestamp_wraparound_is_newer(receiver: type) -> None:
    rx = receiver()
    send(rx, 0xFFFFFF00, [payload(3, False, 160)])
    assert send(rx, 0x00000100, [payload(4, True, 160)]) == [("3", 0xFFFFFF00, 160),
                                                               ("4", 0x100, 160)]


def test_non_digit_events_and_short_payloads_ignored(receiver: type) -> None:
    rx = receiver()
    assert send(rx, 1, [payload(16, True, 800), b"\x01"]) == []


def test_flush_reports_event_without_end(receiver: type) -> None:
    rx = receiver()
    send(rx, 42, [payload(11, False, 320)])
    assert rx.flush() == [("#", 42, 320)]
    assert rx.flush() == []
    assert send(rx, 42, [payload(11, True, 480)]) == []


def test_reordered_update_does_not_shrink_duration(receiver: type) -> None:
    rx = receiver()
    assert send(rx, 9, [payload(7, False, 480), payload(7, False, 320)]) == []
    assert rx.flush() == [("7", 9, 480)]


def test_sender_sequence_follows_section_2_5(packets) -> None:
    pkts = packets("#", 800, ptime=160, volume=10)
    markers = [m for m, _ in pkts]
    fields = [_media.unpack_event(p) for _, p in pkts]
    assert markers == [True] + [False] * (len(pkts) - 1)
    assert [f[3] for f in fields] == [160, 320, 480, 640, 800, 800, 800]
    assert [f[1] for f in fields] == [False] * 4 + [True] * 3
    assert {f[0] for f in fields} == {11} and {f[2] for f in fields} == {10}


def test_sender_short_and_uneven_durations(packets) -> None:
    durations = [_media.unpack_event(p)[3] for _, p in packets("1", 500)]
    assert durations == [160, 320, 480, 500, 500, 500]
    single = packets("1", 100)
    assert [(m, _media.unpack_event(p)[1:]) for m, p in single] == [
        (True, (True, 10, 100)), (False, (True, 10, 100)), (False, (True, 10, 100))]
    with pytest.raises(ValueError):
        packets("x", 800)


def test_sender_output_round_trips_through_receiver(receiver: type, packets) -> None:
    rx = receiver()
    got = [d for i, digit in enumerate("159*") for _, p in packets(digit, 960)
           for d in rx.packet(1000 * i, p)]
    assert got == [("1", 0, 960), ("5", 1000, 960), ("9", 2000, 960), ("*", 3000, 960)]


packet_soup = st.lists(st.tuples(
    st.sampled_from([0, 160, 320, 5000, 0xFFFFFF00, 2**31 + 7]),
    st.binary(min_size=0, max_size=6).map(lambda b: bytes([b[0] % 18]) + b[1:] if b else b)),
    max_size=40)


@given(packet_soup)
def test_kernel_receiver_equals_reference_on_any_packet_order(soup: list) -> None:
    kernel, ref = _media.Rfc4733Receiver(4000), Rfc4733Reference(4000)
    for ts, data in soup:
        assert kernel.packet(ts, data) == ref.packet(ts, data)
    assert kernel.flush() == ref.flush()
