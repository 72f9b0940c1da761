"""Tests for mediasrv.sip.uri: SIP/tel URIs, name-addr, Via, identifiers."""

from __future__ import annotations

import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mediasrv.sip.errors import SipParseError
from mediasrv.sip.uri import (
    _PARAM_VALUE_RE,
    NameAddr,
    SipUri,
    Via,
    generate_branch,
    generate_call_id,
    generate_tag,
    parse_params,
    split_outside,
)


def test_full_sip_uri() -> None:
    uri = SipUri.parse("sips:alice:secret@atlanta.com:5071;transport=TCP;lr?subject=x&priority=u")
    assert (uri.scheme, uri.user, uri.password, uri.host, uri.port) == (
        "sips", "alice", "secret", "atlanta.com", 5071,
    )
    assert uri.params == {"transport": "TCP", "lr": None}
    assert uri.headers == {"subject": "x", "priority": "u"}
    assert uri.transport == "TCP"
    assert str(uri) == "sips:alice:secret@atlanta.com:5071;transport=TCP;lr?subject=x&priority=u"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("sip:host", ("host", 5060)),
        ("sips:host", ("host", 5061)),
        ("sip:u@192.0.2.1:5080", ("192.0.2.1", 5080)),
        ("sip:u@[2001:db8::1]", ("2001:db8::1", 5060)),
        ("sip:[::1]:5090;transport=tcp", ("::1", 5090)),
    ],
)
def test_host_port(text: str, expected: tuple[str, int]) -> None:
    uri = SipUri.parse(text)
    assert uri.host_port() == expected
    assert SipUri.parse(str(uri)) == uri


def test_ipv6_host_keeps_brackets() -> None:
    assert SipUri.parse("sip:u@[2001:db8::1]:5070").host == "[2001:db8::1]"


def test_tel_uri() -> None:
    uri = SipUri.parse("tel:+1-201-555-0123;phone-context=example.com")
    assert (uri.scheme, uri.user, uri.host) == ("tel", "+1-201-555-0123", "")
    assert str(uri) == "tel:+1-201-555-0123;phone-context=example.com"


def test_scheme_is_case_insensitive_and_params_lowercased() -> None:
    uri = SipUri.parse("SIP:bob@Example.COM;Transport=udp")
    assert uri.scheme == "sip" and uri.host == "Example.COM"
    assert uri.params == {"transport": "udp"}


def test_uri_is_hashable_and_comparable() -> None:
    a, b = SipUri.parse("sip:a@h;lr"), SipUri.parse("sip:a@h;lr")
    assert a == b and hash(a) == hash(b)
    assert a != SipUri.parse("sip:a@h")


@pytest.mark.parametrize(
    "text",
    [
        "sip:", "sip:@host", "sip:user@", "sip:user@host:99999", "sip:user@host:port",
        "sip:user@[2001:db8::zz]", "sip:user@[::1", "sip:user@[::1]x", " sip:u@h", "sip:u@h ",
        "sip:us er@host", "sip:u@h;=x", "sip:u@h;a=", "tel:abc def", "nocolon",
        "sip:u@ho st", "sip:u@h;a=b c",
    ],
)
def test_bad_uris(text: str) -> None:
    with pytest.raises(SipParseError):
        SipUri.parse(text)


def test_unknown_scheme_is_416() -> None:
    with pytest.raises(SipParseError) as info:
        SipUri.parse("mailto:a@b")
    assert info.value.status == 416


# --- name-addr ----------------------------------------------------------------------------


def test_name_addr_forms() -> None:
    a = NameAddr.parse('"A \\"quoted\\" \\\\ name" <sip:a@h;lr>;tag=x1;expires=60')
    assert a.display_name == 'A "quoted" \\ name'
    assert a.uri.params == {"lr": None}
    assert a.params == {"tag": "x1", "expires": "60"}
    assert a.tag == "x1"
    assert NameAddr.parse(str(a)) == a

    b = NameAddr.parse("Bob Smith <sip:bob@h>")
    assert b.display_name == "Bob Smith" and b.tag is None
    assert str(b) == '"Bob Smith" <sip:bob@h>'

    # addr-spec: the parameters belong to the header, not the URI (§20.10)
    c = NameAddr.parse("sip:carol@h;tag=99")
    assert c.uri.params == {} and c.tag == "99" and c.display_name is None

    d = NameAddr.parse('"" <sip:d@h>')
    assert d.display_name == "" and NameAddr.parse(str(d)) == d


@pytest.mark.parametrize(
    "text",
    ['"unterminated <sip:a@h>', "<sip:a@h", '"name" sip:a@h', "sip:a b@h", "<sip:a@h>;tag=",
     "<sip:a@h>junk", "Bad,Name <sip:a@h>", "< sip:a@h>", ""],
)
def test_bad_name_addrs(text: str) -> None:
    with pytest.raises(SipParseError):
        NameAddr.parse(text)


# --- Via ---------------------------------------------------------------------------------


def test_via_with_rport_received_and_spaces() -> None:
    v = Via.parse(
        "SIP / 2.0 / udp  192.0.2.1 : 5062 ;branch=z9hG4bKabc ;rport=40000;received=10.0.0.1"
    )
    assert (v.transport, v.host, v.port) == ("UDP", "192.0.2.1", 5062)
    assert (v.branch, v.rport, v.received) == ("z9hG4bKabc", 40000, "10.0.0.1")
    assert str(v) == "SIP/2.0/UDP 192.0.2.1:5062;branch=z9hG4bKabc;rport=40000;received=10.0.0.1"


def test_via_rport_without_value_round_trips() -> None:
    v = Via.parse("SIP/2.0/TCP [2001:db8::2];rport;branch=z9hG4bK1")
    assert v.params == {"rport": None, "branch": "z9hG4bK1"} and v.rport is None
    assert v.host == "[2001:db8::2]" and v.port is None
    assert Via.parse(str(v)) == v


@pytest.mark.parametrize(
    "text", ["SIP/3.0/UDP h", "SIP/2.0/UDP", "SIP/2.0 h", "SIP/2.0/UDP h:70000", "SIP/2.0/UDP h;"],
)
def test_bad_vias(text: str) -> None:
    with pytest.raises(SipParseError):
        Via.parse(text)


# --- helpers -------------------------------------------------------------------------------


def test_generated_identifiers_are_unique_and_well_formed() -> None:
    branches = {generate_branch() for _ in range(100)}
    assert len(branches) == 100 and all(b.startswith("z9hG4bK") for b in branches)
    assert len({generate_tag() for _ in range(100)}) == 100
    call_id = generate_call_id("example.com")
    assert call_id.endswith("@example.com") and len(call_id) > 20


def test_split_outside() -> None:
    assert split_outside('a, "b,\\"c", <d,e>, f', ",") == ["a", ' "b,\\"c"', " <d,e>", " f"]
    with pytest.raises(SipParseError):
        split_outside('"open, x', ",")


# §25.1's grammar of a parameter value, written as the RFC has it (a character or an escape);
# the parser's one-class regex must accept exactly the same texts.
_PARAM_VALUE_GRAMMAR = re.compile(r"(?:[A-Za-z0-9\-_.!~*'()\[\]/:&+$`%]|%[0-9A-Fa-f]{2})*")


@given(st.text(alphabet="az09-_.!~*'()[]/:&+$`%Ff;=,\" <>@\\\t\x00é", max_size=12))
def test_parameter_values_are_checked_against_the_grammar(value: str) -> None:
    expected = _PARAM_VALUE_GRAMMAR.fullmatch(value) is not None
    assert (_PARAM_VALUE_RE.fullmatch(value) is not None) == expected
    if expected and value:
        assert parse_params(f";p={value}") == {"p": value}
