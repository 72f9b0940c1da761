"""Gatekeeper: digest challenges, trusted sources, 403 after a failed answer, rate limiting."""

from __future__ import annotations

import dataclasses
import ipaddress
import logging

import pytest

from mediasrv.call.gatekeeper import DROP, Gatekeeper
from mediasrv.config import DEFAULT_CONFIG_DIR, DEFAULT_PLUGIN_DIR, load_config
from mediasrv.sip.auth import build_authorization
from mediasrv.sip.message import parse_message

SHIPPED = load_config([DEFAULT_CONFIG_DIR], DEFAULT_PLUGIN_DIR)
CONFIG = dataclasses.replace(SHIPPED, sip=dataclasses.replace(
    SHIPPED.sip, digest_algorithms=("SHA-256", "MD5")))


def request(method: str = "REGISTER", user: str = "101", source: str = "127.0.0.9",
            auth: str | None = None):
    lines = [f"{method} sip:127.0.0.1 SIP/2.0",
             f"Via: SIP/2.0/UDP {source}:5062;branch=z9hG4bK{method}{auth is not None}",
             f"From: <sip:{user}@127.0.0.1>;tag=a", f"To: <sip:{user}@127.0.0.1>",
             "Call-ID: gk", f"CSeq: 1 {method}"]
    if auth:
        lines.append(f"Authorization: {auth}")
    return parse_message(("\r\n".join(lines) + "\r\nContent-Length: 0\r\n\r\n").encode())


def answer(gk: Gatekeeper, password: str, user: str = "101", method: str = "REGISTER",
           algorithm_index: int = 0):
    challenge = gk.check(request(method, user), 0.0).response
    assert challenge is not None and challenge.status == 401
    value = challenge.headers.get_all("WWW-Authenticate")[algorithm_index]
    auth = build_authorization(value, method, "sip:127.0.0.1", user, password)
    return gk.check(request(method, user, auth=auth), 1.0)


def offered(config) -> list[str]:
    resp = Gatekeeper(config).check(request(), 0.0).response
    assert resp is not None and resp.status == 401
    values = resp.headers.get_all("WWW-Authenticate")
    return [v.split("algorithm=")[1].split(",")[0] for v in values]


def test_challenge_follows_digest_algorithms() -> None:
    assert offered(SHIPPED) == ["MD5"]
    assert offered(CONFIG) == ["SHA-256", "MD5"]


@pytest.mark.parametrize("index", [0, 1], ids=["SHA-256", "MD5"])
def test_right_password_authenticates_the_extension(index: int) -> None:
    verdict = answer(Gatekeeper(CONFIG), "demo101", algorithm_index=index)
    assert verdict.response is None and verdict.extension.number == "101"


def test_wrong_password_is_403_without_detail() -> None:
    verdict = answer(Gatekeeper(CONFIG), "nope")
    assert verdict.response.status == 403 and verdict.response.reason == "Forbidden"


def test_register_for_another_extension_is_refused() -> None:
    gk = Gatekeeper(CONFIG)
    challenge = gk.check(request(), 0.0).response
    auth = build_authorization(challenge.headers.get_all("WWW-Authenticate")[0], "REGISTER",
                               "sip:127.0.0.1", "101", "demo101")
    req = request(auth=auth)
    req.headers.set("To", "<sip:102@127.0.0.1>")
    assert gk.check(req, 1.0).response.status == 403


def test_trusted_source_needs_no_credentials() -> None:
    sip = dataclasses.replace(CONFIG.sip, trusted=(ipaddress.ip_network("10.9.0.0/16"),))
    gk = Gatekeeper(dataclasses.replace(CONFIG, sip=sip))
    verdict = gk.check(request("INVITE", "5551234", source="10.9.1.2"), 0.0)
    assert verdict.response is None and verdict.extension is None


def test_repeated_failures_block_the_source_and_log_once(caplog) -> None:
    gk = Gatekeeper(CONFIG)
    with caplog.at_level(logging.WARNING, logger="mediasrv.auth"):
        statuses = [answer(gk, "nope").response.status for _ in range(5)]
        blocked = gk.check(request(), 2.0).response
    assert statuses == [403] * 5
    assert blocked is DROP
    assert len([r for r in caplog.records if "blocked" in r.message]) == 1
