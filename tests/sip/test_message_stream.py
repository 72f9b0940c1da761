"""Tests for StreamFramer: Content-Length framing of SIP over TCP (RFC 3261 §18.3)."""

from __future__ import annotations

from mediasrv.sip.errors import SipParseError
from mediasrv.sip.message import Request, Response, StreamFramer, parse_message
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
