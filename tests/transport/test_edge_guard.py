"""The SIP edge guard on its own: pre-parse verdicts, rate limit, strikes, bans and expiry."""

from __future__ import annotations

import logging
import re

import pytest

from bench.sip_flood import KINDS
from mediasrv.config_edge import SecurityConfig
from mediasrv.transport.guard import Guard, preparse

GOOD = (b"OPTIONS sip:100@127.0.0.1 SIP/2.0\r\n"
        b"Via: SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bK1;rport\r\n"
        b"From: <sip:a@b>;tag=1\r\nTo: <sip:100@127.0.0.1>\r\nCall-ID: x\r\n"
        b"CSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n")
COMPACT_V6 = (b"INVITE sips:100@[::1]:5061 SIP/2.0\r\nv: SIP/2.0/TLS [2001:db8::1]:5061;branch=z9"
              b"\r\nf: <sip:a@b>;tag=1\r\nt: <sip:b@c>\r\ni: y\r\nCSeq: 2 INVITE\r\nl: 0\r\n\r\n")
RESPONSE = (b"SIP/2.0 200 OK\r\nVia: SIP/2.0/UDP phone.example.com;branch=z9hG4bKx\r\n"
            b"From: <sip:a@b>;tag=1\r\nTo: <sip:b@c>;tag=2\r\nCall-ID: z\r\nCSeq: 1 BYE\r\n\r\n")
FAIL2BAN = re.compile(r"mediasrv: banned (?P<host>\S+) for \d+ s: ")


@pytest.mark.parametrize("data", [GOOD, COMPACT_V6, RESPONSE])
def test_valid_messages_pass_the_preparse(data: bytes) -> None:
    assert preparse(data, 16384) is None


@pytest.mark.parametrize("kind,why", [
    ("via_bad_host", "bad via host"), ("via_bad_host_register", "bad via host"),
    ("via_bad_host_invite", "bad via host"), ("via_empty_host", "bad via host"),
    ("via_bad_port", "bad via host"), ("via_bad_proto", "bad via"),
    ("missing_via", "no via header"), ("missing_from", "no from header"),
    ("missing_to", "no to header"), ("missing_call_id", "no call-id header"),
    ("missing_cseq", "no cseq header"), ("huge_header", "too large"),
    ("bad_request_line", "bad start line"), ("bad_sip_version", "bad start line"),
    ("garbage", "bad start line")])
def test_flood_kinds_the_preparse_drops(kind: str, why: str) -> None:
    data = KINDS[kind]("127.0.0.1:5060", "127.0.0.3:4000", f"flood-{kind}-1")
    assert preparse(data, 16384) == why


def guard(**kw) -> Guard:
    return Guard(SecurityConfig(**kw), trusted=lambda host: host == "10.0.0.1")


def test_strikes_ban_a_source_with_a_fail2ban_line(caplog: pytest.LogCaptureFixture) -> None:
    g = guard(ban_threshold=5, ban_window=10, ban_time=60)
    bad = KINDS["via_bad_host"]("127.0.0.1:5060", "192.0.2.9:4000", "flood-x-1")
    with caplog.at_level(logging.WARNING, "mediasrv.security"):
        verdicts = [g.admit(bad, "192.0.2.9", True, 100.0 + i) for i in range(5)]
    assert verdicts == [False] * 5
    assert g.is_banned("192.0.2.9", 105.0)
    assert not g.admit(GOOD, "192.0.2.9", True, 106.0)  # even valid input, while banned
    assert g.admit(GOOD, "192.0.2.10", True, 106.0)  # others are not affected
    [line] = [r.getMessage() for r in caplog.records]
    assert line == "mediasrv: banned 192.0.2.9 for 60 s: 5 invalid requests in 10 s"
    assert FAIL2BAN.match(line)["host"] == "192.0.2.9"
    g.expire(104.0 + 61)
    assert "192.0.2.9" not in g.bans and g.admit(GOOD, "192.0.2.9", True, 166.0)
    assert g.dropped == {"bad via host": 5, "banned": 1}


def test_strikes_outside_the_window_do_not_ban() -> None:
    g = guard(ban_threshold=3, ban_window=10)
    for t in (0.0, 6.0, 12.0, 18.0):
        g.strike("192.0.2.9", t)
    assert not g.bans


def test_rate_limit_drops_the_excess_then_bans() -> None:
    g = guard(rate_limit=10, ban_threshold=20, ban_window=10)
    admitted = sum(g.admit(GOOD, "192.0.2.7", True, 50.0) for _ in range(25))
    assert admitted == 10 and g.dropped["rate_limited"] == 15
    assert g.admit(GOOD, "192.0.2.7", True, 50.5)  # the bucket refills: 5 tokens in 0.5 s
    for _ in range(10):
        g.admit(GOOD, "192.0.2.7", True, 50.5)
    assert g.is_banned("192.0.2.7", 50.5)
    assert g.bans["192.0.2.7"].reason == "20 messages over the rate limit in 10 s"


def test_responses_are_not_rate_limited_and_trusted_sources_skip_the_guard() -> None:
    g = guard(rate_limit=2)
    assert all(g.admit(RESPONSE, "192.0.2.5", True, 1.0) for _ in range(10))
    bad = KINDS["garbage"]("127.0.0.1:5060", "10.0.0.1:4000", "flood-garbage-1")
    assert all(g.admit(bad, "10.0.0.1", True, 1.0) for _ in range(100))
    g.strike("10.0.0.1", 1.0)
    assert not g.bans


def test_stream_chunks_skip_the_preparse_but_not_the_ban() -> None:
    g = guard(ban_threshold=1)
    assert g.admit(b"OPTIONS sip:x SIP/2.0\r\nVia: SIP/2.0/TCP bad_host!!", "192.0.2.3",
                   False, 1.0)  # half a message on a stream: the framer decides
    g.strike("192.0.2.3", 1.0)
    assert not g.admit(GOOD, "192.0.2.3", False, 2.0)


def test_zero_turns_limits_off() -> None:
    g = guard(rate_limit=0, ban_threshold=0)
    assert all(g.admit(GOOD, "192.0.2.8", True, 1.0) for _ in range(1000))
    for _ in range(1000):
        g.strike("192.0.2.8", 1.0)
    assert not g.bans


def test_shipped_fail2ban_filter_matches_the_ban_line(caplog: pytest.LogCaptureFixture) -> None:
    """deploy/fail2ban's failregex lines (fail2ban's <HOST> as a named group) match the log."""
    from pathlib import Path
    conf = (Path(__file__).parents[2] / "deploy/fail2ban/filter.d/mediasrv.conf").read_text()
    block = conf.split("failregex =", 1)[1].split("ignoreregex", 1)[0]
    patterns = [re.compile(line.strip().replace("<HOST>", r"(?P<host>\S+)"))
                for line in block.splitlines() if line.strip()]
    assert len(patterns) == 3
    g = guard(ban_threshold=1)
    with caplog.at_level(logging.WARNING, "mediasrv.security"):
        g.strike("198.51.100.4", 1.0)
    lines = [r.getMessage() for r in caplog.records] + [
        "mediasrv: refused tls connection from 198.51.100.4: 32 already open",
        "mediasrv: closed slow tcp connection from 198.51.100.4: no complete message in 10 s"]
    for line, pattern in zip(lines, patterns, strict=True):
        m = pattern.search(f"2026-12-04 12:00:00,000 WARNING mediasrv.security: {line}")
        assert m and m["host"] == "198.51.100.4", (line, pattern)


@pytest.mark.parametrize("data,why", [
    (GOOD.replace(b"Via:", b"VIA :"), None),  # any case, space before the colon
    (GOOD.replace(b"To:", b"Tox:"), "no to header"),  # a longer name is not the header
    (GOOD.replace(b"To:", b"t:"), None),
    (GOOD.replace(b"Call-ID:", b"I\t:"), None),
    (GOOD.replace(b"192.0.2.1:5060", b"192.0.2.1:70000"), "bad via host"),
    (GOOD.replace(b"192.0.2.1:5060", b"192.0.2.1"), None),
    (GOOD.replace(b"192.0.2.1:5060", b"1.2.3.4.5"), None),  # a host name of digit labels
    (GOOD.replace(b"192.0.2.1:5060", b"Host-A.Example.COM:5061"), None),
    (GOOD.replace(b"192.0.2.1:5060", b"192.0.2.1-:5060"), "bad via host"),
    # the head ends at the blank line: a Via line in the body does not count
    (GOOD.replace(b"Via: SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bK1;rport\r\n", b"")
     + b"\r\nVia: SIP/2.0/UDP 192.0.2.1:5060\r\n", "no via header"),
    (GOOD.replace(b"Via: SIP/2.0/UDP", b"Via: SIP/2.0/UDP\r\n"), "bad via"),
])
def test_preparse_header_names_and_sent_by(data: bytes, why: str | None) -> None:
    assert preparse(data, 16384) == why
