"""Tests for mediasrv.sip.sdp: parsing, offer/answer, hold detection."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mediasrv.sip.errors import SdpNegotiationError, SdpParseError
from mediasrv.sip.message import parse_message
from mediasrv.sip.sdp import (
    MediaDescription,
    Origin,
    SessionDescription,
    build_answer,
    build_offer,
    is_hold,
    negotiate,
)


def sdp(*lines: str) -> bytes:
    return ("\r\n".join(lines) + "\r\n").encode()


LINPHONE_OFFER = sdp(
    "v=0",
    "o=alice 3344 2211 IN IP4 192.0.2.50",
    "s=Talk",
    "c=IN IP4 192.0.2.50",
    "b=AS:380",
    "t=0 0",
    "a=rtcp-xr:rcvr-rtt=all:10000 stat-summary=loss,dup,jitt,TTL voip-metrics",
    "m=audio 7078 RTP/AVP 96 97 98 0 8 18 100 101",
    "a=rtpmap:96 opus/48000/2",
    "a=fmtp:96 useinbandfec=1",
    "a=rtpmap:97 speex/16000",
    "a=rtpmap:98 speex/8000",
    "a=rtpmap:100 telephone-event/48000",
    "a=rtpmap:101 telephone-event/8000",
    "a=fmtp:101 0-15",
    "a=rtcp-fb:* trr-int 1000",
    "m=video 9078 RTP/AVP 96",
    "c=IN IP4 192.0.2.51",
    "a=rtpmap:96 VP8/90000",
)


def test_parse_typical_invite_body(invite_bytes: bytes) -> None:
    sd = SessionDescription.parse(parse_message(invite_bytes).body)
    assert sd.origin == Origin("Z", 1732630000000, 1, "192.0.2.20")
    assert sd.connection == "192.0.2.20"
    (m,) = sd.media
    assert (m.media, m.port, m.proto) == ("audio", 8000, "RTP/AVP")
    assert m.formats == ["8", "0", "9", "101"]
    assert m.rtpmap == {101: "telephone-event/8000"} and m.fmtp == {101: "0-16"}
    assert (m.ptime, m.direction) == (20, "sendrecv")
    assert m.codec_of("8") == ("PCMA", 8000) and m.codec_of("101") == ("telephone-event", 8000)


def test_round_trip_keeps_unknown_lines() -> None:
    sd = SessionDescription.parse(LINPHONE_OFFER)
    again = SessionDescription.parse(sd.to_bytes())
    assert again == sd
    assert ("b", "AS:380") in sd.lines
    assert sd.attributes[0][0] == "rtcp-xr"
    assert sd.media[0].attributes == [("rtcp-fb", "* trr-int 1000")]
    assert sd.media_address(sd.media[1]) == "192.0.2.51"
    assert sd.media_address(sd.media[0]) == "192.0.2.50"


def test_negotiate_picks_offerers_first_common_codec_and_8k_events() -> None:
    neg = negotiate(SessionDescription.parse(LINPHONE_OFFER), ["PCMU", "PCMA"])
    assert (neg.codec, neg.pt, neg.event_pt) == ("PCMU", 0, 101)
    assert (neg.remote_addr, neg.remote_port, neg.direction, neg.ptime) == (
        "192.0.2.50", 7078, "sendrecv", 20,
    )
    assert neg.media_index == 0
    neg = negotiate(SessionDescription.parse(LINPHONE_OFFER), ["pcma"])
    assert (neg.codec, neg.pt) == ("PCMA", 8)


def test_telephone_event_at_any_payload_type_and_dynamic_g711() -> None:
    offer = SessionDescription.parse(sdp(
        "v=0", "o=- 1 1 IN IP6 2001:db8::5", "s=-", "t=0 0",
        "m=audio 4000 RTP/AVP 112 126", "c=IN IP6 2001:db8::5",
        "a=rtpmap:112 PCMA/8000", "a=rtpmap:126 TELEPHONE-EVENT/8000", "a=ptime:30",
        "a=recvonly",
    ))
    neg = negotiate(offer, ["PCMU", "PCMA"])
    assert (neg.codec, neg.pt, neg.event_pt, neg.ptime) == ("PCMA", 112, 126, 30)
    assert (neg.remote_addr, neg.direction) == ("2001:db8::5", "recvonly")
    answer = build_answer(offer, neg, "2001:db8::1", 30000, session_id=7, version=1)
    (m,) = answer.media
    assert answer.connection == "2001:db8::1" and answer.origin.addrtype == "IP6"
    assert m.formats == ["112", "126"] and m.direction == "sendonly"
    assert b"c=IN IP6 2001:db8::1\r\n" in answer.to_bytes()


def test_no_common_codec_is_488() -> None:
    offer = SessionDescription.parse(sdp(
        "v=0", "o=- 1 1 IN IP4 192.0.2.1", "s=-", "c=IN IP4 192.0.2.1", "t=0 0",
        "m=audio 4000 RTP/AVP 18 9", "m=audio 4002 RTP/SAVP 0",
    ))
    with pytest.raises(SdpNegotiationError) as info:
        negotiate(offer, ["PCMU", "PCMA"])
    assert info.value.status == 488


def test_answer_rejects_extra_streams_in_order() -> None:
    offer = SessionDescription.parse(sdp(
        "v=0", "o=- 1 1 IN IP4 192.0.2.1", "s=-", "c=IN IP4 192.0.2.1", "t=0 0",
        "m=video 5000 RTP/AVP 96", "a=rtpmap:96 H264/90000",
        "m=audio 0 RTP/AVP 0", "m=audio 4000 RTP/AVP 0 8", "m=audio 4010 RTP/AVP 8",
    ))
    neg = negotiate(offer, ["PCMA", "PCMU"])
    assert (neg.media_index, neg.codec, neg.event_pt) == (2, "PCMU", None)
    answer = build_answer(offer, neg, "192.0.2.9", 20000, 99, 2, "sendrecv")
    assert [(m.media, m.port, m.formats) for m in answer.media] == [
        ("video", 0, ["96"]), ("audio", 0, ["0"]), ("audio", 20000, ["0"]), ("audio", 0, ["8"]),
    ]
    assert answer.origin.session_id == 99 and answer.origin.version == 2
    assert SessionDescription.parse(answer.to_bytes()) == answer


def test_build_offer() -> None:
    offer = build_offer("192.0.2.9", 20002, ["PCMU", "PCMA"], session_id=5, version=1)
    text = offer.to_bytes().decode()
    assert "m=audio 20002 RTP/AVP 0 8 101\r\n" in text
    assert "a=rtpmap:101 telephone-event/8000\r\na=rtpmap" not in text
    assert "a=fmtp:101 0-16\r\n" in text and "a=ptime:20\r\n" in text
    assert text.startswith("v=0\r\no=mediasrv 5 1 IN IP4 192.0.2.9\r\ns=")
    neg = negotiate(SessionDescription.parse(offer.to_bytes()), ["PCMA"])
    assert (neg.codec, neg.pt, neg.event_pt, neg.remote_port) == ("PCMA", 8, 101, 20002)
    plain = build_offer("192.0.2.9", 20002, ["PCMA"], None, session_id=5, version=2,
                        direction="sendonly", ptime=40)
    (m,) = plain.media
    assert (m.formats, m.direction, m.ptime, m.fmtp) == (["8"], "sendonly", 40, {})


@pytest.mark.parametrize(
    ("extra", "session_c", "held"),
    [
        ([], "192.0.2.1", False),
        (["a=sendonly"], "192.0.2.1", True),
        (["a=inactive"], "192.0.2.1", True),
        (["a=recvonly"], "192.0.2.1", False),
        ([], "0.0.0.0", True),
    ],
)
def test_is_hold(extra: list[str], session_c: str, held: bool) -> None:
    body = sdp("v=0", "o=- 1 1 IN IP4 192.0.2.1", "s=-", f"c=IN IP4 {session_c}", "t=0 0",
               "m=audio 4000 RTP/AVP 0", *extra)
    assert is_hold(SessionDescription.parse(body)) is held


def test_session_level_direction_applies_to_media() -> None:
    body = sdp("v=0", "o=- 1 1 IN IP4 192.0.2.1", "s=-", "c=IN IP4 192.0.2.1", "t=0 0",
               "a=sendonly", "m=audio 4000 RTP/AVP 0")
    sd = SessionDescription.parse(body)
    assert sd.media[0].direction is None and sd.media_direction(sd.media[0]) == "sendonly"
    assert is_hold(sd) and negotiate(sd, ["PCMU"]).direction == "sendonly"


@pytest.mark.parametrize(
    "body",
    [
        b"", b"v=1\r\n", sdp("v=0", "s=-"), sdp("v=0", "o=- x 1 IN IP4 h", "s=-"),
        sdp("v=0", "o=- 1 1 IN IP4 h", "c=IN IP9 x"), sdp("v=0", "o=- 1 1 IN IP4 h", "bogus"),
        sdp("v=0", "o=- 1 1 IN IP4 h", "m=audio 70000 RTP/AVP 0"),
        sdp("v=0", "o=- 1 1 IN IP4 h", "m=audio 4000 RTP/AVP"),
        sdp("v=0", "o=- 1 1 IN IP4 h", "m=audio 4000/000 RTP/AVP 0"),  # zero ports
        sdp("v=0", "o=- 1 1 IN IP4 h", "m=audio 4000 RTP/AVP 0", "a=rtpmap:x PCMU/8000"),
        sdp("v=0", "o=- 1 1 IN IP4 h", "m=audio 4000 RTP/AVP 0", "a=ptime:abc"),
        b"v=0\r\n\xff\r\n",
    ],
)
def test_malformed_sdp(body: bytes) -> None:
    with pytest.raises(SdpParseError):
        SessionDescription.parse(body)


def test_media_without_address_is_not_negotiable() -> None:
    body = sdp("v=0", "o=- 1 1 IN IP4 192.0.2.1", "s=-", "t=0 0", "m=audio 4000 RTP/AVP 0")
    with pytest.raises(SdpNegotiationError):
        negotiate(SessionDescription.parse(body), ["PCMU"])


@given(
    st.lists(st.sampled_from(["0", "8", "9", "18", "101", "96"]), min_size=1, max_size=5),
    st.integers(1, 65535), st.sampled_from([None, "sendonly", "inactive"]),
    st.none() | st.integers(10, 60),
)
def test_generated_round_trip(fmts: list[str], port: int, direction: str | None,
                              ptime: int | None) -> None:
    m = MediaDescription("audio", port, "RTP/AVP", fmts, direction=direction, ptime=ptime)
    m.rtpmap = {int(f): "X/8000" for f in fmts if int(f) >= 96}
    sd = SessionDescription(Origin("u", 1, 2, "192.0.2.3"), "s", "192.0.2.3", [m])
    assert SessionDescription.parse(sd.to_bytes()) == sd


@st.composite
def mutated_sdp(draw: st.DrawFn) -> bytes:
    data = bytearray(draw(st.sampled_from([LINPHONE_OFFER, build_offer(
        "192.0.2.9", 4000, ["PCMU", "PCMA"], session_id=1, version=1).to_bytes()])))
    for _ in range(draw(st.integers(1, 5))):
        pos = draw(st.integers(0, len(data)))
        if draw(st.booleans()):
            data[pos:pos] = draw(st.sampled_from(
                [b"\r\n", b"=", b" ", b":", b"/", b"inf", b"nan", b"-1", b"99999999", b"\xff"]
            ) | st.binary(min_size=1, max_size=4))
        else:
            del data[pos : pos + draw(st.integers(1, 8))]
    return bytes(data)


@given(mutated_sdp())
def test_fuzzed_sdp_only_raises_sdp_errors(body: bytes) -> None:
    try:
        sd = SessionDescription.parse(body)
    except SdpParseError:
        return
    assert SessionDescription.parse(sd.to_bytes()) == sd
    is_hold(sd)
    try:
        neg = negotiate(sd, ["PCMU", "PCMA"])
    except SdpNegotiationError:
        return
    build_answer(sd, neg, "192.0.2.1", 5000, 1, 1).to_bytes()


YEALINK_OFFER = sdp(
    "v=0", "o=- 20 20 IN IP4 192.0.2.60", "s=SDP data", "c=IN IP4 192.0.2.60", "t=0 0",
    "m=audio 11800 RTP/AVP 9 0 8 18 101",
    "a=rtpmap:9 G722/8000", "a=rtpmap:0 PCMU/8000", "a=rtpmap:8 PCMA/8000",
    "a=rtpmap:18 G729/8000", "a=fmtp:18 annexb=no", "a=rtpmap:101 telephone-event/8000",
    "a=fmtp:101 0-15", "a=ptime:20", "a=sendrecv",
)


def test_answer_keeps_the_offerers_wideband_preference() -> None:
    # A desk phone offers G.722 first: a server that supports it answers G.722 ...
    neg = negotiate(SessionDescription.parse(YEALINK_OFFER), ["PCMU", "PCMA", "G722"])
    assert (neg.codec, neg.pt, neg.event_pt) == ("G722", 9, 101)
    # ... a softphone offers Opus first (at a dynamic PT, 48 kHz clock): answered Opus.
    neg = negotiate(SessionDescription.parse(LINPHONE_OFFER), ["PCMU", "G722", "OPUS"])
    assert (neg.codec, neg.pt, neg.event_pt) == ("OPUS", 96, 101)
    answer = build_answer(SessionDescription.parse(LINPHONE_OFFER), neg, "192.0.2.9", 20000,
                          session_id=1, version=1).to_bytes().decode()
    assert "m=audio 20000 RTP/AVP 96 101\r\n" in answer
    assert "a=rtpmap:96 opus/48000/2\r\n" in answer
    assert "a=fmtp:96 useinbandfec=1;stereo=0;sprop-stereo=0\r\n" in answer
    # ... and a G.711-only list still gets G.711 from the same offers.
    assert negotiate(SessionDescription.parse(YEALINK_OFFER), ["PCMA", "PCMU"]).codec == "PCMU"


def test_a_codec_at_the_wrong_clock_rate_is_not_taken() -> None:
    offer = SessionDescription.parse(sdp(
        "v=0", "o=- 1 1 IN IP4 192.0.2.1", "s=-", "c=IN IP4 192.0.2.1", "t=0 0",
        "m=audio 4000 RTP/AVP 96 97 0", "a=rtpmap:96 opus/16000", "a=rtpmap:97 G722/16000",
    ))
    assert negotiate(offer, ["OPUS", "G722", "PCMU"]).codec == "PCMU"


def test_wideband_offer_round_trips() -> None:
    offer = build_offer("192.0.2.9", 20002, ["OPUS", "G722", "PCMU"], session_id=5, version=1)
    text = offer.to_bytes().decode()
    assert "m=audio 20002 RTP/AVP 111 9 0 101\r\n" in text
    assert "a=rtpmap:111 opus/48000/2\r\na=rtpmap:9 G722/8000\r\n" in text
    assert "a=fmtp:111 useinbandfec=1;stereo=0;sprop-stereo=0\r\n" in text
    for local, expect in ((["G722", "PCMU"], ("G722", 9)), (["OPUS"], ("OPUS", 111))):
        neg = negotiate(SessionDescription.parse(offer.to_bytes()), local)
        assert (neg.codec, neg.pt) == expect


def test_to_bytes_writes_lines_in_rfc_order_with_and_without_extra_lines() -> None:
    """to_bytes skips the sort and the per-line passes when there are no extra lines; with
    them, each still lands at its RFC 4566 §5 place (session: o s i u e p c b t; media: m i c
    b k a)."""
    plain = sdp("v=0", "o=a 1 2 IN IP4 192.0.2.1", "s=x", "c=IN IP4 192.0.2.1", "t=0 0",
                "m=audio 4000 RTP/AVP 0", "a=rtpmap:0 PCMU/8000", "a=sendrecv")
    assert SessionDescription.parse(plain).to_bytes() == plain
    extra = sdp("v=0", "o=a 1 2 IN IP4 192.0.2.1", "s=x", "i=info", "u=http://x/",
                "c=IN IP4 192.0.2.1", "b=AS:64", "t=0 0", "t=1 2", "z=0 0",
                "m=audio 4000 RTP/AVP 0", "i=voice", "c=IN IP4 192.0.2.2", "b=AS:64",
                "a=rtpmap:0 PCMU/8000", "a=sendrecv")
    shuffled = sdp("v=0", "t=0 0", "b=AS:64", "z=0 0", "u=http://x/", "i=info", "t=1 2",
                   "o=a 1 2 IN IP4 192.0.2.1", "c=IN IP4 192.0.2.1", "s=x",
                   "m=audio 4000 RTP/AVP 0", "a=sendrecv", "b=AS:64", "c=IN IP4 192.0.2.2",
                   "i=voice", "a=rtpmap:0 PCMU/8000")
    assert SessionDescription.parse(extra).to_bytes() == extra
    assert SessionDescription.parse(shuffled).to_bytes() == extra
