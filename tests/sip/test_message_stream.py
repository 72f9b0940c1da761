"""Tests for StreamFramer: Content-Length framing of SIP over TCP (RFC 3261 §18.3)."""

from __future__ import annotations

import pytest

from mediasrv.sip.errors import SipParseError
from mediasrv.sip.message import (
    Request,
    Response,
    StreamFramer,
    parse_message,
    start_line_verdict,
)
from tests.sip.samples import load_sample


def test_two_messages_fed_byte_by_byte_with_keepalives() -> None:
    one, two = load_sample("invite_sdp.sip"), load_sample("valid/unreason.sip")
    stream = b"\r\n\r\n" + one + b"\r\n" + two + b"\r\n\r\n"
    framer = StreamFramer()
    out = [item for i in range(len(stream)) for item in framer.feed(stream[i : i + 1])]
    assert out == [parse_message(one), parse_message(two)]
    assert not framer.should_close


def test_several_messages_in_one_chunk() -> None:
    one = load_sample("valid/semiuri.sip")
    out = StreamFramer().feed(one * 3)
    assert len(out) == 3 and all(isinstance(m, Request) for m in out)


def test_body_waits_for_content_length() -> None:
    data = load_sample("invite_sdp.sip")
    framer = StreamFramer()
    assert framer.feed(data[:-5]) == []
    (msg,) = framer.feed(data[-5:])
    assert isinstance(msg, Request) and msg.body.endswith(b"a=sendrecv\r\n")


def test_missing_content_length_closes_with_answerable_request() -> None:
    data = load_sample("valid/semiuri.sip").replace(b"l: 0\r\n", b"")
    framer = StreamFramer()
    (err,) = framer.feed(data + load_sample("valid/semiuri.sip"))
    assert isinstance(err, SipParseError) and err.status == 400
    assert isinstance(err.partial, Request) and err.partial.method == "OPTIONS"
    assert framer.should_close
    assert framer.feed(load_sample("valid/semiuri.sip")) == []


def test_bad_content_length_closes() -> None:
    data = load_sample("valid/semiuri.sip").replace(b"l: 0", b"l: -1")
    framer = StreamFramer()
    (err,) = framer.feed(data)
    assert isinstance(err, SipParseError) and framer.should_close


def test_oversize_body_and_endless_header_close_with_413() -> None:
    data = load_sample("valid/semiuri.sip").replace(b"l: 0", b"l: 999999")
    framer = StreamFramer()
    (err,) = framer.feed(data)
    assert isinstance(err, SipParseError) and err.status == 413 and framer.should_close
    framer = StreamFramer(max_size=1000)
    assert framer.feed(b"OPTIONS sip:a@b SIP/2.0\r\n" + b"X: y\r\n" * 200) != []
    assert framer.should_close


def test_framed_but_invalid_message_is_reported_and_stream_goes_on() -> None:
    bad = load_sample("invalid/mismatch01.sip")
    good = load_sample("valid/noreason.sip")
    framer = StreamFramer()
    out = framer.feed(bad + good)
    assert isinstance(out[0], SipParseError) and isinstance(out[1], Response)
    assert not framer.should_close


@pytest.mark.parametrize("data,verdict", [
    (b"", None), (b"OPT", None), (b"OPTIONS sip:a@b SIP/2.0", None), (b"SIP/2.0 200 OK\r", None),
    (b"OPTIONS sip:a@b SIP/2.0\r\n", True), (b"SIP/2.0 200 OK\r\n", True),
    (b"INVITE sips:a@[::1] SIP/2.0\n", True), (b"OPTIONS sip:a SIP/3.0\r\n", True),  # 505 later
    (b"\x16\x03\x01\x02\x00", False), (b" OPTIONS", False), (b"\x00", False),
    (b"OPTIONS sip:a\x00b", False), (b"OPTIONS sip:a@b SIP/2.0\rX", False),
    (b"GET / HTTP/1.1\r\n", False), (b"OPTIONS  SIP/2.0 extra\r\n", False),
    (b"OPTIONS sip:a@b\r\n", False), (b"\xff\xfe", False),
])
def test_start_line_verdict(data: bytes, verdict: bool | None) -> None:
    assert start_line_verdict(data) is verdict


@pytest.mark.parametrize("first,rest", [
    (b"\x16\x03\x01 flood-garbage-1 ", b""),            # TLS bytes on a TCP port: the first byte
    (b"\r\n\r\nGET / HT", b"TP/1.1\r\nHost: x\r\n\r\n"),  # another protocol: its first line
])
def test_a_stream_that_does_not_begin_sip_closes_without_waiting_for_a_header_end(
        first: bytes, rest: bytes) -> None:
    framer = StreamFramer()
    out = framer.feed(first)
    if rest:
        assert out == [] and not framer.should_close and framer.buffered == len(first) - 4
        out = framer.feed(rest)
    (err,) = out
    assert isinstance(err, SipParseError) and err.reason == "not a SIP start line"
    assert err.partial is None and framer.should_close and framer.buffered == 0


def test_a_header_over_the_limit_is_refused_without_being_parsed() -> None:
    framer = StreamFramer(max_size=1000)
    data = load_sample("valid/semiuri.sip").replace(b"l: 0\r\n", b"l: 0\r\nX: " +
                                                    b"y" * 2000 + b"\r\n")
    (err,) = framer.feed(data)
    assert err.status == 413 and err.partial is None and framer.should_close


def test_the_header_end_is_found_across_reads_after_a_keepalive() -> None:
    one = load_sample("valid/semiuri.sip")
    framer = StreamFramer()
    head_end = one.index(b"\r\n\r\n")
    pieces = [b"\r\n\r\n", one[:head_end + 1], one[head_end + 1:head_end + 3],
              one[head_end + 3:], b"\r\n", one]
    out = [item for piece in pieces for item in framer.feed(piece)]
    assert out == [parse_message(one)] * 2 and framer.buffered == 0
