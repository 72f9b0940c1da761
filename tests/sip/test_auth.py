"""Tests for mediasrv.sip.auth: RFC 7616 known answers, nonces, replay, failure limiting."""

from __future__ import annotations

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from mediasrv.sip.auth import (
    DigestAuthenticator,
    FailureLimiter,
    build_authorization,
    digest_response,
    ha1,
    parse_auth_params,
)
from mediasrv.sip.message import Headers, Request

# RFC 7616 §3.9.1: the same request answered with MD5 and with SHA-256.
RFC_USER, RFC_PASSWORD, RFC_REALM = "Mufasa", "Circle of Life", "http-auth@example.org"
RFC_NONCE = "7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v"
RFC_CNONCE = "f2/wE4q74E6zIJEtWaHKaf5wv/H5QzzpXusqGemxURZJ"


@pytest.mark.parametrize(
    ("algorithm", "expected"),
    [
        ("MD5", "8ca523f5e9506fed4657c9700eebdbec"),
        ("SHA-256", "753927fa0e85d155564e2e272a28d1802ca10daf4496794697cf8db5856cb6c1"),
    ],
)
def test_rfc7616_known_answers(algorithm: str, expected: str) -> None:
    key = ha1(RFC_USER, RFC_REALM, RFC_PASSWORD, algorithm)
    got = digest_response(
        algorithm, key, RFC_NONCE, "00000001", RFC_CNONCE, "GET", "/dir/index.html"
    )
    assert got == expected


def test_client_builds_the_rfc_answer() -> None:
    challenge = (
        f'Digest realm="{RFC_REALM}", qop="auth, auth-int", algorithm=SHA-256, '
        f'nonce="{RFC_NONCE}", opaque="FQhe/qaU925kfnzjCev0ciny7QMkPqMAFRtzCUYo5tdS"'
    )
    value = build_authorization(
        challenge, "GET", "/dir/index.html", RFC_USER, RFC_PASSWORD, cnonce=RFC_CNONCE
    )
    scheme, params = parse_auth_params(value)
    assert scheme == "digest"
    assert params["response"] == "753927fa0e85d155564e2e272a28d1802ca10daf4496794697cf8db5856cb6c1"
    assert params["opaque"] == "FQhe/qaU925kfnzjCev0ciny7QMkPqMAFRtzCUYo5tdS"
    assert params["nc"] == "00000001"


REALM = "pbx.example"
PASSWORDS = {"2001": "s3cret", "2002": "other"}


def lookup(username: str, realm: str, algorithm: str) -> str | None:
    password = PASSWORDS.get(username)
    return None if password is None else ha1(username, realm, password, algorithm)


def register(uri: str = "sip:pbx.example") -> Request:
    return Request("REGISTER", uri, Headers())


@pytest.fixture
def auth() -> DigestAuthenticator:
    return DigestAuthenticator(b"k" * 32, REALM, nonce_ttl=300)


def answer(challenge: str, password: str = "s3cret", nc: int = 1, user: str = "2001",
           uri: str = "sip:pbx.example", method: str = "REGISTER") -> str:
    return build_authorization(challenge, method, uri, user, password, nc=nc)


def test_challenge_lists_sha256_first_with_one_nonce(auth: DigestAuthenticator) -> None:
    values = auth.challenge(1000.0)
    params = [parse_auth_params(v)[1] for v in values]
    assert [p["algorithm"] for p in params] == ["SHA-256", "MD5"]
    assert params[0]["nonce"] == params[1]["nonce"] and params[0]["qop"] == "auth"
    assert params[0]["realm"] == REALM and "stale" not in params[0]
    assert parse_auth_params(auth.challenge(1000.0, stale=True)[0])[1]["stale"] == "true"
    assert auth.challenge(1000.0)[0] != values[0]  # fresh random nonce each time


@pytest.mark.parametrize("index", [0, 1])
def test_good_answer_is_ok_with_each_algorithm(auth: DigestAuthenticator, index: int) -> None:
    challenge = auth.challenge(1000.0)[index]
    result = auth.verify(register(), answer(challenge), lookup, 1010.0)
    assert result.ok and result.username == "2001" and result.status == "ok"


def test_sha512_256_when_available(auth: DigestAuthenticator) -> None:
    (challenge,) = auth.challenge(1000.0, algorithms=("SHA-512-256",))
    assert auth.verify(register(), answer(challenge), lookup, 1000.0).ok


def test_wrong_password_and_unknown_user_are_bad(auth: DigestAuthenticator) -> None:
    challenge = auth.challenge(1000.0)[0]
    cases = [
        (register(), answer(challenge, password="guess"), "wrong response"),
        (register(), answer(challenge, user="9999"), "unknown user"),
        (Request("INVITE", "sip:pbx.example", Headers()), answer(challenge), "wrong response"),
    ]
    for request, value, reason in cases:
        result = auth.verify(request, value, lookup, 1000.0)
        assert result.status == "bad" and reason in result.reason


def test_digest_uri_other_than_the_request_uri(auth: DigestAuthenticator) -> None:
    """Strict (check_uri): a mismatch is its own status (the gatekeeper answers 400). Lenient:
    accepted, the uri being covered by the response, and the nonce-count guard still on."""
    challenge = auth.challenge(1000.0)[1]
    sipp_default = answer(challenge, uri="sip:127.0.0.1:5060")  # SIPp's [authentication]
    strict = auth.verify(register(), sipp_default, lookup, 1000.0)
    assert strict.status == "uri_mismatch" and strict.username == "2001"
    assert strict.reason == ("digest uri 'sip:127.0.0.1:5060' is not the Request-URI "
                             "'sip:pbx.example'")
    assert auth.verify(register(), sipp_default, lookup, 1000.0, check_uri=False).ok
    replay = auth.verify(register(), sipp_default, lookup, 1000.0, check_uri=False)
    assert replay.status == "bad" and replay.reason == "nonce count replayed"
    tampered = sipp_default.replace("sip:127.0.0.1:5060", "sip:127.0.0.1:5061")
    wrong = auth.verify(register(), tampered.replace("nc=00000001", "nc=00000002"), lookup,
                        1000.0, check_uri=False)
    assert wrong.status == "bad" and wrong.reason == "wrong response"


def test_forged_nonce_is_bad(auth: DigestAuthenticator) -> None:
    other = DigestAuthenticator(b"x" * 32, REALM)
    forged = other.challenge(1000.0)[0]
    result = auth.verify(register(), answer(forged), lookup, 1000.0)
    assert result.status == "bad" and "nonce" in result.reason
    garbage = answer(auth.challenge(1000.0)[0]).replace('nonce="', 'nonce="AAAA')
    assert auth.verify(register(), garbage, lookup, 1000.0).status == "bad"


def test_expired_nonce_with_right_password_is_stale(auth: DigestAuthenticator) -> None:
    challenge = auth.challenge(1000.0)[0]
    assert auth.verify(register(), answer(challenge), lookup, 1301.0).status == "stale"
    wrong = answer(challenge, password="guess")
    assert auth.verify(register(), wrong, lookup, 1301.0).status == "bad"


def test_replayed_nonce_count_is_refused(auth: DigestAuthenticator) -> None:
    challenge = auth.challenge(1000.0)[0]
    first = answer(challenge, nc=1)
    assert auth.verify(register(), first, lookup, 1001.0).ok
    replay = auth.verify(register(), first, lookup, 1002.0)
    assert replay.status == "bad" and "replayed" in replay.reason
    assert auth.verify(register(), answer(challenge, nc=2), lookup, 1003.0).ok
    assert auth.verify(register(), answer(challenge, nc=2), lookup, 1004.0).status == "bad"
    assert auth.verify(register(), answer(challenge, nc=5), lookup, 1005.0).ok


def test_failed_attempt_does_not_burn_nonce_counts(auth: DigestAuthenticator) -> None:
    challenge = auth.challenge(1000.0)[0]
    assert not auth.verify(register(), answer(challenge, "guess", nc=9), lookup, 1000.0).ok
    assert auth.verify(register(), answer(challenge, nc=1), lookup, 1000.0).ok


def test_nonce_table_is_bounded(monkeypatch: pytest.MonkeyPatch,
                                auth: DigestAuthenticator) -> None:
    monkeypatch.setattr("mediasrv.sip.auth._NC_TABLE_SIZE", 3)
    challenges = [auth.challenge(1000.0 + i)[0] for i in range(5)]
    for i, challenge in enumerate(challenges[1:], start=1):
        assert auth.verify(register(), answer(challenge), lookup, 1010.0 + i).ok
    assert len(auth._nc_seen) == 3
    # the evicted nonce (issued at 1001) and any older one can no longer be trusted
    assert auth.verify(register(), answer(challenges[1]), lookup, 1020.0).status == "stale"
    assert auth.verify(register(), answer(challenges[0]), lookup, 1020.0).status == "stale"


@pytest.mark.parametrize(
    "value",
    [
        'Basic dXNlcjpwYXNz',
        'Digest username="2001", realm="pbx.example"',
        'Digest username="2001, realm="pbx.example"',
        'Digest username',
    ],
)
def test_malformed_authorization_is_bad(auth: DigestAuthenticator, value: str) -> None:
    assert auth.verify(register(), value, lookup, 1000.0).status == "bad"


def test_wrong_realm_qop_algorithm_or_nc_are_bad(auth: DigestAuthenticator) -> None:
    good = answer(auth.challenge(1000.0)[0])
    for old, new in [
        (f'realm="{REALM}"', 'realm="other"'), ("qop=auth", "qop=auth-int"),
        ("algorithm=SHA-256", "algorithm=SHA-1"), ("nc=00000001", "nc=1"),
    ]:
        assert old in good
        assert auth.verify(register(), good.replace(old, new), lookup, 1000.0).status == "bad"


def test_short_secret_is_refused() -> None:
    with pytest.raises(ValueError):
        DigestAuthenticator(b"short", REALM)


# --- FailureLimiter ------------------------------------------------------------------------


def test_failure_limiter_blocks_and_backs_off() -> None:
    lim = FailureLimiter(max_failures=3, window=60, base_block=30, max_block=100)
    addr = ("192.0.2.1", 5060)
    assert [lim.record_failure(addr, 0.0) for _ in range(3)] == [False, False, True]
    assert not lim.allow(addr, 10.0) and lim.allow(("192.0.2.2", 5060), 10.0)
    assert lim.record_failure(addr, 10.0) is False  # already blocked: not logged again
    assert lim.allow(addr, 30.0)
    assert [lim.record_failure(addr, 31.0) for _ in range(3)] == [False, False, True]
    assert not lim.allow(addr, 90.0) and lim.allow(addr, 91.0)  # doubled to 60 s
    for _ in range(3):
        lim.record_failure(addr, 100.0)
    assert not lim.allow(addr, 199.0) and lim.allow(addr, 200.0)  # capped at 100 s


def test_failures_outside_window_do_not_add_up_and_success_clears() -> None:
    lim = FailureLimiter(max_failures=2, window=10)
    assert not lim.record_failure("a", 0.0)
    assert not lim.record_failure("a", 11.0)
    lim.record_success("a")
    assert not lim.record_failure("a", 12.0)
    assert lim.record_failure("a", 13.0) and not lim.allow("a", 14.0)


def test_failure_limiter_memory_is_bounded() -> None:
    lim = FailureLimiter(max_failures=2, max_sources=100)
    for i in range(1000):
        lim.record_failure(i, float(i))
    assert len(lim._sources) == 100


@given(st.text(max_size=200), st.sampled_from(["", "username", "nc", "response", "realm"]))
def test_garbage_authorization_is_bad_never_an_exception(junk: str, name: str) -> None:
    auth = DigestAuthenticator(b"k" * 32, REALM)
    _, params = parse_auth_params(answer(auth.challenge(1000.0)[0]))
    if name:
        assume(junk.strip() != params[name])
        params[name] = junk
        value = "Digest " + ", ".join(f"{k}={v}" for k, v in params.items())
    else:
        value = "Digest " + junk
    assert auth.verify(register(), value, lookup, 1000.0).status == "bad"
