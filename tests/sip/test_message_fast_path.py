"""The fast paths of parsing and serialising give what the general paths give.

`parse_message` takes a fast path for messages in the usual shape (`_plain_head`,
`_plain_header_lines`) and `parse_params` one for parameters with nothing to strip or unquote
(`_PLAIN_PARAMS_RE`). Each test here parses the same input twice, once with the fast path
switched off (the compiled modules look their globals up at call time, so monkeypatching
works), and requires the same message, the same parameters, or the same error.
"""

from __future__ import annotations

import re

import pytest

import mediasrv.sip.message as message
import mediasrv.sip.uri as uri
from mediasrv.sip.errors import SipParseError
from tests.sip.samples import load_sample, sample_names

INVITE = (b"INVITE sip:bob@example.com SIP/2.0\r\n"
          b"Via: SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bK-1;rport\r\n"
          b"From: \"Al\" <sip:al@example.com>;tag=a1\r\nTo: <sip:bob@example.com>\r\n"
          b"Call-ID: c1@x\r\nCSeq: 1 INVITE\r\nX-Odd : v\r\nContent-Length: 3\r\n\r\nabc")
# Shapes the fast path hands to the general one, and malformed messages either path refuses.
ODD = {
    "lf-only": INVITE.replace(b"\r\n", b"\n"),
    "folded": INVITE.replace(b"CSeq: 1 INVITE", b"CSeq: 1\r\n  INVITE"),
    "bare-lf-blank-line": INVITE.replace(b"X-Odd : v\r\n", b"X-Odd : v\n\r\n"),
    "bare-cr": INVITE.replace(b"X-Odd : v", b"X-Odd : v\rw"),
    "nul": INVITE.replace(b"X-Odd : v", b"X-Odd : v\x00"),
    "not-utf8": INVITE.replace(b"X-Odd : v", b"X-Odd : \xff"),
    "no-colon": INVITE.replace(b"X-Odd : v", b"X-Odd v"),
    "bad-name": INVITE.replace(b"X-Odd : v", b"X(Odd): v"),
    "no-blank-line": INVITE.split(b"\r\n\r\n")[0],
    "leading-crlf": b"\r\n\r\n" + INVITE,
    "too-many-lines": INVITE.replace(b"X-Odd : v", b"\r\n".join([b"X: y"] * 101)),
    "bad-start-line": INVITE.replace(b"INVITE sip", b"INVITE  sip"),
    "short-body": INVITE.replace(b"Content-Length: 3", b"Content-Length: 9"),
    "binary-body": INVITE[:-3] + b"\xff\x00\r",
}


def _outcome(data: bytes) -> object:
    try:
        return message.parse_message(data)
    except SipParseError as exc:
        return ("error", exc.status, exc.reason, exc.partial)


def _both_paths(monkeypatch: pytest.MonkeyPatch, data: bytes) -> tuple[object, object]:
    fast = _outcome(data)
    with monkeypatch.context() as m:
        m.setattr(message, "_plain_head", lambda data: None)
        general = _outcome(data)
    return fast, general


@pytest.mark.parametrize("name", sorted(ODD))
def test_odd_shapes_parse_as_on_the_general_path(monkeypatch, name):
    fast, general = _both_paths(monkeypatch, ODD[name])
    assert fast == general


@pytest.mark.parametrize("kind_name", [(k, n) for k in ("valid", "invalid")
                                       for n in sample_names(k)])
def test_samples_parse_as_on_the_general_path(monkeypatch, kind_name):
    kind, name = kind_name
    fast, general = _both_paths(monkeypatch, load_sample(f"{kind}/{name}"))
    assert fast == general


def test_plain_head_takes_the_usual_message_and_leaves_the_rest():
    assert message._plain_head(INVITE) is not None
    for name in ("lf-only", "folded", "bare-lf-blank-line", "bare-cr", "nul", "not-utf8",
                 "no-blank-line"):
        lines = message._plain_head(ODD[name])
        assert lines is None or message._plain_header_lines(lines[0][1:]) is None, name


PARAMS = ["", ";lr", ";branch=z9hG4bK-1;rport", ";Tag=AbC", ";a=b;A=c", ";transport=udp;lr",
          "; lr", ";a = b", ';a="q;x"', ";a=", ";=b", ";a=b=c", ";a b", "lr", ";a;;b",
          ";maddr=[2001:db8::1]", ";a=%41", ";a=<b>", " ;lr"]


@pytest.mark.parametrize("text", PARAMS)
def test_plain_parameters_parse_as_on_the_general_path(monkeypatch, text):
    def outcome() -> object:
        try:
            return uri.parse_params(text)
        except SipParseError as exc:
            return ("error", exc.reason)
    fast = outcome()
    with monkeypatch.context() as m:
        m.setattr(uri, "_PLAIN_PARAMS_RE", re.compile(r"(?!)"))
        general = outcome()
    assert fast == general


def test_to_bytes_writes_one_right_content_length_where_set_would():
    """`to_bytes` checks Content-Length while it writes the lines; what it writes and leaves
    in the headers is what `set("Content-Length", ...)` before writing gave."""
    def lines(*pairs: tuple[str, str]) -> message.Request:
        return message.Request("MESSAGE", "sip:a@b", message.Headers(pairs), b"hello")
    cases = [
        lines(("To", "<sip:a@b>")),                                        # none: appended
        lines(("Content-Length", "5"), ("To", "<sip:a@b>")),               # right: kept
        lines(("Content-Length", "9"), ("To", "<sip:a@b>")),               # wrong: replaced
        lines(("Content-Length", "5"), ("To", "<sip:a@b>"), ("l", "5")),   # two: one left
    ]
    for msg in cases:
        msg.headers.get("Content-Length")  # memoised: to_bytes must empty the memo
        expected = message.Headers(msg.headers.items())
        expected.set("Content-Length", "5")
        head = b"MESSAGE sip:a@b SIP/2.0\r\n" + b"".join(
            f"{n}: {v}\r\n".encode() for n, v in expected.items())
        assert msg.to_bytes() == head + b"\r\nhello"
        assert msg.headers == expected
        assert msg.headers.get("Content-Length") == "5"
