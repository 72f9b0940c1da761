"""Tests for mediasrv.sip.message: parsing real and torture messages, building responses."""

from __future__ import annotations

import pytest

from mediasrv.sip.errors import SipParseError
from mediasrv.sip.message import (
    MAX_HEADER_LINES,
    REASON_PHRASES,
    Headers,
    Request,
    Response,
    make_response,
    parse_message,
)
from mediasrv.sip.uri import NameAddr, Via
from tests.sip.samples import load_sample, sample_names


@pytest.mark.parametrize("name", sample_names("valid"))
def test_valid_samples_parse_and_round_trip(name: str) -> None:
    msg = parse_message(load_sample(f"valid/{name}"))
    again = parse_message(msg.to_bytes())
    assert again == msg


# name -> (status, answerable): answerable says whether `.partial` must hold the request.
INVALID = {
    "clerr.sip": (400, True),
    "ncl.sip": (400, True),
    "scalar02.sip": (400, False),
    "quotbal.sip": (400, True),
    "ltgtruri.sip": (400, True),
    "lwsruri.sip": (400, False),
    "badvers.sip": (505, False),
    "mismatch01.sip": (400, True),
    "insuf.sip": (400, False),
    "dupto.sip": (400, True),
    "badviaport.sip": (400, False),
    "nocolon.sip": (400, True),
    "badaspec.sip": (400, True),
}


def test_every_invalid_sample_has_an_expectation() -> None:
    assert sorted(INVALID) == sample_names("invalid")


@pytest.mark.parametrize("name", sorted(INVALID))
def test_invalid_samples_raise_with_status(name: str) -> None:
    status, answerable = INVALID[name]
    with pytest.raises(SipParseError) as info:
        parse_message(load_sample(f"invalid/{name}"))
    assert info.value.status == status
    assert info.value.reason
    if answerable:
        assert isinstance(info.value.partial, Request)
        assert info.value.partial.call_id.startswith(name.removesuffix(".sip"))
    else:
        assert info.value.partial is None


def test_tortuous_invite_fields() -> None:
    msg = parse_message(load_sample("valid/wsinv.sip"))
    assert isinstance(msg, Request)
    assert msg.method == "INVITE"
    assert msg.to_tag == "1918181833n"
    assert msg.from_tag == "98asjd8"
    assert msg.from_addr.display_name == 'J Rosenberg \\"'
    assert msg.cseq == (9, "INVITE")
    assert msg.headers.get("max-forwards") == "0068"
    assert msg.headers.get("Subject") == ""
    assert msg.headers.get("NewFangledHeader") == "newfangled value continued newfangled value"
    vias = [Via.parse(v) for v in msg.headers.get_all("Via")]
    assert [(v.transport, v.host, v.branch) for v in vias] == [
        ("UDP", "192.0.2.2", "390skdjuw"),
        ("TCP", "spindle.example.com", "z9hG4bK9ikj8"),
        ("UDP", "192.168.255.111", "z9hG4bK30239"),
    ]
    assert vias[0].params["rport"] is None
    contact = NameAddr.parse(msg.headers.get_all("Contact")[0])
    assert contact.display_name == 'Quoted string ""'
    assert contact.params == {"newparam": "newvalue", "secondparam": None, "q": "0.33"}
    assert msg.body.startswith(b"v=0\r\n") and msg.body.endswith(b"a=rtpmap:31 LPC\r\n")


def test_unusual_method_and_uri() -> None:
    msg = parse_message(load_sample("valid/intmeth.sip"))
    assert isinstance(msg, Request)
    assert msg.method == "!interesting-Method0123456789_*+`.%indeed'~"
    uri = msg.request_uri
    assert uri.user == "1_unusual.URI~(to-be!sure)&isn't+it$/crazy?,/;;*"
    assert uri.password == "&it+has=1,weird!*pas$wo~d_too.(doesn't-it)"
    assert msg.from_addr.display_name == "token1~` token2'+_ token3*%!.-"
    assert msg.from_addr.params["fromparam''~+*_!.-%"] == '"работающий"'
    assert msg.headers.get("extensionHeader-!.%*+_`'~") == "大停電"


def test_semicolon_in_user_part() -> None:
    msg = parse_message(load_sample("valid/semiuri.sip"))
    assert isinstance(msg, Request)
    assert msg.request_uri.user == "user;par=u%40example.net"
    assert msg.request_uri.host == "example.com"
    assert msg.headers.get_all("Accept")[-1] == "message/sipfrag"
    assert len(msg.headers.get_all("Accept")) == 6


def test_ipv6_and_rport() -> None:
    msg = parse_message(load_sample("valid/ipv6.sip"))
    via = msg.top_via
    assert (via.host, via.port, via.rport, via.params["rport"]) == (
        "[2001:db8::9:1]", 5070, None, None,
    )
    contact = NameAddr.parse(msg.headers.get("Contact") or "")
    assert contact.uri.host_port() == ("2001:db8::1", 5060)
    assert contact.params["expires"] == "3600"
    assert contact.params["+sip.instance"].startswith('"<urn:uuid:')


def test_responses() -> None:
    msg = parse_message(load_sample("valid/noreason.sip"))
    assert isinstance(msg, Response)
    assert (msg.status, msg.reason) == (100, "")
    msg = parse_message(load_sample("valid/unreason.sip"))
    assert isinstance(msg, Response)
    assert msg.reason.endswith("простое")
    assert msg.body.endswith(b"RTP/AVP 0\r\n")


def test_lf_only_line_endings_and_leading_crlf() -> None:
    data = b"\r\n" + load_sample("valid/lwsdisp.sip").replace(b"\r\n", b"\n")
    msg = parse_message(data)
    assert msg.from_addr.display_name == "caller"
    assert msg.cseq == (60, "OPTIONS")


def test_content_length_trims_datagram() -> None:
    data = load_sample("valid/lwsdisp.sip").replace(b"l: 0", b"l: 3") + b"abcdef"
    assert parse_message(data).body == b"abc"


def test_missing_content_length_takes_rest_of_datagram() -> None:
    data = load_sample("valid/lwsdisp.sip").replace(b"l: 0\r\n", b"") + b"xyz"
    assert parse_message(data).body == b"xyz"


def test_too_large_is_413() -> None:
    data = load_sample("valid/lwsdisp.sip").replace(b"l: 0", b"l: 70000") + b"x" * 70000
    with pytest.raises(SipParseError) as info:
        parse_message(data)
    assert info.value.status == 413


def test_too_many_header_lines() -> None:
    extra = b"".join(b"X-H%d: v\r\n" % i for i in range(MAX_HEADER_LINES))
    data = load_sample("valid/lwsdisp.sip").replace(b"l: 0\r\n", extra)
    with pytest.raises(SipParseError, match="too many"):
        parse_message(data)


def test_cseq_at_limit() -> None:
    base = load_sample("valid/lwsdisp.sip")
    assert parse_message(base.replace(b"CSeq: 60", b"CSeq: 2147483647")).cseq[0] == 2**31 - 1
    with pytest.raises(SipParseError):
        parse_message(base.replace(b"CSeq: 60", b"CSeq: 2147483648"))


def test_garbage_start_line() -> None:
    for line in (b"", b"HELLO", b"SIP/2.0 2000 OK", b"SIP/2.0 099 Low", b"INVITE  SIP/2.0"):
        with pytest.raises(SipParseError):
            parse_message(line + b"\r\n\r\n")


def test_non_utf8_header_is_an_error() -> None:
    data = load_sample("valid/lwsdisp.sip").replace(b"caller<", b"\xff\xfe<")
    with pytest.raises(SipParseError):
        parse_message(data)


def test_unknown_request_uri_scheme_is_left_to_the_endpoint() -> None:
    data = load_sample("valid/lwsdisp.sip").replace(b"sip:user@example.com SIP", b"urn:x SIP")
    msg = parse_message(data)
    assert isinstance(msg, Request)
    with pytest.raises(SipParseError) as info:
        _ = msg.request_uri
    assert info.value.status == 416


def test_ack_is_never_answerable() -> None:
    data = load_sample("invalid/mismatch01.sip").replace(b"OPTIONS sip", b"ACK sip")
    with pytest.raises(SipParseError) as info:
        parse_message(data)
    assert info.value.partial is None


# --- Headers -----------------------------------------------------------------------------


def test_headers_case_insensitive_and_compact() -> None:
    h = Headers([("v", "SIP/2.0/UDP a"), ("CALL-ID", "x"), ("k", "timer")])
    assert h.items() == [("Via", "SIP/2.0/UDP a"), ("Call-ID", "x"), ("Supported", "timer")]
    assert h.get("call-id") == "x" and h.get("i") == "x"
    assert "supported" in h and "Require" not in h
    assert h.get("Require") is None and h.get_all("Require") == []


def test_headers_list_splitting_respects_quotes_and_brackets() -> None:
    h = Headers()
    h.add("Contact", '"Doe, John" <sip:a@b;x=1,2>;q=0.5, <sip:c@d>')
    h.add("Contact", "sip:e@f")
    h.add("WWW-Authenticate", 'Digest realm="a", nonce="b"')
    h.add("Date", "Sat, 13 Nov 2010 23:29:00 GMT")
    assert h.get_all("Contact") == ['"Doe, John" <sip:a@b;x=1,2>;q=0.5', "<sip:c@d>", "sip:e@f"]
    assert h.get_all("WWW-Authenticate") == ['Digest realm="a", nonce="b"']
    assert h.get_all("Date") == ["Sat, 13 Nov 2010 23:29:00 GMT"]


def test_headers_set_add_prepend_remove() -> None:
    h = Headers([("Via", "1"), ("To", "t"), ("Via", "2"), ("From", "f")])
    h.prepend("Via", "0")
    assert h.get_all("Via") == ["0", "1", "2"]
    assert h.items()[0] == ("Via", "0")
    h.set("Via", "only")
    assert h.items() == [("Via", "only"), ("To", "t"), ("From", "f")]
    h.prepend("Route", "<sip:r>")
    assert h.items()[0] == ("Route", "<sip:r>")
    h.remove("to")
    assert h.get("To") is None and len(h) == 3
    h.set("Content-Length", "0")
    assert h.items()[-1] == ("Content-Length", "0")


def test_to_bytes_sets_content_length() -> None:
    req = Request("MESSAGE", "sip:a@b", Headers([("Content-Length", "99")]), b"hello")
    assert b"\r\nContent-Length: 5\r\n\r\nhello" in req.to_bytes()
    assert req.headers.get("Content-Length") == "5"


# --- make_response -------------------------------------------------------------------------


def test_make_response_copies_identifying_headers() -> None:
    req = parse_message(load_sample("valid/transports.sip"))
    assert isinstance(req, Request)
    req.headers.add("Record-Route", "<sip:p1;lr>, <sip:p2;lr>")
    resp = make_response(req, 200, to_tag="srvtag", headers=[("Contact", "<sip:me@h>")])
    assert (resp.status, resp.reason) == (200, "OK")
    assert resp.headers.get_all("Via") == req.headers.get_all("Via")
    assert resp.headers.get_all("Record-Route") == ["<sip:p1;lr>", "<sip:p2;lr>"]
    assert resp.to_tag == "srvtag" and resp.from_tag == "323"
    assert resp.call_id == req.call_id and resp.cseq == (60, "OPTIONS")
    assert resp.headers.get("Contact") == "<sip:me@h>"
    assert resp.headers.get("Accept") is None
    assert parse_message(resp.to_bytes()) == resp


def test_make_response_keeps_existing_to_tag_and_skips_record_route_on_errors() -> None:
    data = load_sample("valid/noreason.sip").replace(b"SIP/2.0 100 ", b"BYE sip:u@h SIP/2.0")
    req = parse_message(data.replace(b"35 INVITE", b"35 BYE"))
    assert isinstance(req, Request)
    req.headers.add("Record-Route", "<sip:p1;lr>")
    resp = make_response(req, 486, to_tag="new")
    assert resp.to_tag == "902jndnke3"
    assert resp.reason == REASON_PHRASES[486] == "Busy Here"
    assert "Record-Route" not in resp.headers
    assert make_response(req, 299).reason == "Unknown"
    assert make_response(req, 400, "Bad CSeq").reason == "Bad CSeq"


def test_get_returns_first_element_of_list_headers_and_tolerates_bad_quotes() -> None:
    h = Headers([("Via", "SIP/2.0/UDP a;branch=z9hG4bK1, SIP/2.0/UDP b")])
    h.add("Contact", '"x <sip:a>')
    assert h.get("Via") == "SIP/2.0/UDP a;branch=z9hG4bK1"
    assert h.get_all("Contact") == ['"x <sip:a>'] and h.get("Contact") == '"x <sip:a>'
    h.add("Supported", "")
    assert h.get("Supported") == "" and h.get_all("Supported") == []


def test_control_characters_in_header_values_are_refused() -> None:
    base = load_sample("valid/lwsdisp.sip")
    for bad in (b"\r", b"\x00"):
        with pytest.raises(SipParseError, match="control"):
            parse_message(base.replace(b"Max-Forwards: 70", b"Max-Forwards: 7" + bad + b"0"))


_OPTIONS = (b"OPTIONS sip:b@h SIP/2.0\r\nVia: SIP/2.0/UDP h;branch=z9hG4bKa\r\n"
            b"From: <sip:a@h>;tag=f1\r\nTo: <sip:b@h>\r\nCall-ID: c1\r\nCSeq: 1 OPTIONS\r\n"
            b"Max-Forwards: 70\r\nContent-Length: 3\r\n\r\nabc")


@pytest.mark.parametrize(("old", "new", "error", "answerable"), [
    (b"sip:b@h SIP", b"sip:b\x00@h SIP", "bad user part", True),  # the start line
    (b"sip:b@h SIP", b"sip:b@h\rx SIP", "bad host", True),
    (b"70\r\n", b"70\r\r\n", "control character in Max-Forwards", True),  # CR before CRLF
    (b"Call-ID: c1", b"Call-ID: c\x001", "control character in Call-ID", False),
])
def test_control_characters_are_found_wherever_they_are_in_the_head(
    old: bytes, new: bytes, error: str, answerable: bool
) -> None:
    """The head is searched once for a bare CR or NUL, the lines only when it holds one: a
    control character in the start line or a header reports the same error as before."""
    with pytest.raises(SipParseError, match=error) as caught:
        parse_message(_OPTIONS.replace(old, new, 1))
    assert caught.value.status == 400 and (caught.value.partial is not None) == answerable


def test_control_characters_in_the_body_are_the_body() -> None:
    msg = parse_message(_OPTIONS.replace(b"\r\n\r\nabc", b"\r\n\r\n\r\x00x"))
    assert msg.body == b"\r\x00x"


def test_more_compact_forms() -> None:
    h = Headers([("j", "*;audio"), ("d", "proxy"), ("a", "*;video"), ("y", "abc"), ("o", "dialog")])
    assert [n for n, _ in h.items()] == [
        "Reject-Contact", "Request-Disposition", "Accept-Contact", "Identity", "Event",
    ]


def test_memoised_lookups_follow_every_change() -> None:
    """Header lookups and the values derived from them (tags, CSeq, branch) are memoised
    until the headers change; each kind of change is seen by the next read."""
    msg = parse_message(b"INVITE sip:b@h SIP/2.0\r\nVia: SIP/2.0/UDP h;branch=z9hG4bKa\r\n"
                        b"From: <sip:a@h>;tag=f1\r\nTo: <sip:b@h>\r\nCall-ID: c1\r\n"
                        b"CSeq: 1 INVITE\r\nContent-Length: 0\r\n\r\n")
    assert (msg.to_tag, msg.from_tag, msg.cseq, msg.via_branch) == (None, "f1", (1, "INVITE"),
                                                                   "z9hG4bKa")
    msg.headers.set("To", "<sip:b@h>;tag=t1")
    msg.headers.prepend("Via", "SIP/2.0/UDP p;branch=z9hG4bKb")
    assert (msg.to_tag, msg.via_branch) == ("t1", "z9hG4bKb")
    msg.headers.remove("CSeq")
    msg.headers.add("CSeq", "2 INVITE")
    assert msg.cseq == (2, "INVITE") and msg.headers.get("CSeq") == "2 INVITE"
    copy = msg.headers.copy()
    copy.set("From", "<sip:a@h>;tag=f2")
    assert (msg.from_tag, copy.get("From")) == ("f1", "<sip:a@h>;tag=f2")
    msg.headers.set("Content-Length", "0")
    msg.headers.add("Content-Length", "0")  # two lines: serialising leaves one
    assert msg.to_bytes().count(b"Content-Length") == 1
