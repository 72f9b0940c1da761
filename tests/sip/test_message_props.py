"""Property tests for the SIP parser: round trips of generated messages, and fuzzing of real
messages (bit flips, truncation, inserted bytes) that must only ever raise SipParseError."""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mediasrv.sip.errors import SipParseError
from mediasrv.sip.message import (
    Headers,
    Request,
    Response,
    StreamFramer,
    make_response,
    parse_message,
)
from mediasrv.sip.uri import NameAddr, SipUri, Via
from tests.sip.samples import load_sample, sample_names

TOKEN_CHARS = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-.!%*_+`'~"
tokens = st.text(TOKEN_CHARS, min_size=1, max_size=12)
hosts = st.one_of(
    st.from_regex(r"[a-z]([a-z0-9\-]{0,6}[a-z0-9])?(\.[a-z][a-z0-9]{0,5}){0,2}", fullmatch=True),
    st.ip_addresses(v=4).map(str),
    st.ip_addresses(v=6).map(lambda a: f"[{a}]"),
)
ports = st.none() | st.integers(0, 65535)
param_values = st.none() | st.text("abcdefXYZ0123456789-._~", min_size=1, max_size=8)
params = st.dictionaries(tokens.map(str.lower), param_values, max_size=3)
users = st.none() | st.text("abcxyz0123456789-_.!~*'()&=+$,;?/", min_size=1, max_size=10)

sip_uris = st.builds(
    SipUri, st.sampled_from(["sip", "sips"]), hosts, users, st.none(), ports, params, st.just({})
)
display_names = st.none() | st.text(
    st.characters(blacklist_categories=("Cs", "Cc")), max_size=12
)
name_addrs = st.builds(NameAddr, sip_uris, display_names, params)
vias = st.builds(Via, st.sampled_from(["UDP", "TCP", "TLS"]), hosts, ports, params)
header_values = st.text(
    st.characters(blacklist_categories=("Cs", "Cc")), max_size=30
).map(str.strip)
extra_headers = st.lists(st.tuples(tokens.map(lambda t: "X-" + t), header_values), max_size=5)
bodies = st.binary(max_size=200)


@st.composite
def messages(draw: st.DrawFn) -> Request | Response:
    from_addr = draw(name_addrs)
    from_addr.params["tag"] = draw(tokens)
    method = draw(tokens)
    headers = Headers([("Via", str(v)) for v in draw(st.lists(vias, min_size=1, max_size=3))])
    headers.add("From", str(from_addr))
    headers.add("To", str(draw(name_addrs)))
    headers.add("Call-ID", draw(tokens) + "@" + draw(hosts))
    headers.add("CSeq", f"{draw(st.integers(0, 2**31 - 1))} {method}")
    for name, value in draw(extra_headers):
        headers.add(name, value)
    body = draw(bodies)
    if draw(st.booleans()):
        return Request(method, str(draw(sip_uris)), headers, body)
    reason = draw(header_values)
    return Response(draw(st.integers(100, 699)), reason, headers, body)


@given(messages())
def test_parse_of_to_bytes_is_identity(msg: Request | Response) -> None:
    data = msg.to_bytes()
    assert parse_message(data) == msg
    (framed,) = StreamFramer().feed(data)
    assert framed == msg


@given(sip_uris)
def test_uri_round_trip(uri: SipUri) -> None:
    assert SipUri.parse(str(uri)) == uri


@given(name_addrs)
def test_name_addr_round_trip(addr: NameAddr) -> None:
    assert NameAddr.parse(str(addr)) == addr


@given(vias)
def test_via_round_trip(via: Via) -> None:
    assert Via.parse(str(via)) == via


SAMPLES = [load_sample(f"valid/{n}") for n in sample_names("valid")] + [
    load_sample("invite_sdp.sip")
]


@st.composite
def mutated(draw: st.DrawFn) -> bytes:
    data = bytearray(draw(st.sampled_from(SAMPLES)))
    for _ in range(draw(st.integers(1, 6))):
        kind = draw(st.sampled_from(["flip", "truncate", "insert", "delete"]))
        pos = draw(st.integers(0, max(len(data) - 1, 0)))
        if kind == "flip" and data:
            data[pos] ^= 1 << draw(st.integers(0, 7))
        elif kind == "truncate":
            del data[pos:]
        elif kind == "insert":
            data[pos:pos] = draw(st.binary(min_size=1, max_size=8) | st.sampled_from(
                [b"\r\n", b"\n ", b":", b";", b",", b'"', b"<", b">", b"@", b"[", b"\\"]
            ))
        elif data:
            del data[pos : pos + draw(st.integers(1, 10))]
    return bytes(data)


def _check_accessors(msg: Request | Response) -> None:
    """A message that parsed must answer every accessor the transaction layer uses."""
    assert msg.call_id
    msg.cseq, msg.from_tag, msg.to_tag, msg.via_branch  # noqa: B018 - must not raise


@settings(max_examples=400, suppress_health_check=[HealthCheck.too_slow])
@given(mutated())
def test_fuzzed_messages_only_raise_sip_parse_error(data: bytes) -> None:
    try:
        msg = parse_message(data)
    except SipParseError as exc:
        assert 400 <= exc.status < 600
        if exc.partial is not None:
            answer = make_response(exc.partial, exc.status, exc.reason, to_tag="t")
            assert answer.to_bytes().startswith(b"SIP/2.0 4")
            assert answer.top_via == exc.partial.top_via
            assert (answer.cseq, answer.from_tag) == (exc.partial.cseq, exc.partial.from_tag)
        return
    _check_accessors(msg)


@settings(max_examples=200, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(mutated(), min_size=1, max_size=3), st.integers(1, 50))
def test_fuzzed_stream_only_yields_messages_or_errors(chunks: list[bytes], step: int) -> None:
    stream = b"".join(chunks)
    framer = StreamFramer()
    for i in range(0, len(stream), step):
        for item in framer.feed(stream[i : i + step]):
            assert isinstance(item, Request | Response | SipParseError)
