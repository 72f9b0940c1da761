"""Digest interop with SIPp's default `[authentication]`, which puts `sip:remote_ip:remote_port`
in the digest `uri` rather than the Request-URI (Asterisk accepts it; RFC 2617 §3.2.2.5 says a
mismatch SHOULD get 400).

mediasrv accepts it by default (the uri is still covered by the response hash, and the
nonce-count replay guard stays on); `sip.digest_uri_check = true` makes it strict: 400 with a
reason phrase, and a warning naming both URIs.
"""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from tests.integration.conftest import Harness
from tests.integration.test_transports import overlay_harness
from tests.peers.sipp import Sipp

pytestmark = [pytest.mark.asyncio, pytest.mark.peer]


def sipp_default(harness: Harness, scenario: str, ext: str, **kw) -> Sipp:
    """SIPp with its default digest uri: no `-auth_uri`."""
    host, port = harness.sip_addr
    return Sipp(scenario, f"{host}:{port}", users=[(ext, f"demo{ext}")], **kw)


async def test_sipp_default_digest_uri_calls_through(harness: Harness) -> None:
    host, port = harness.sip_addr
    call = sipp_default(harness, "uac_call_rtp", "101", service="102", tone="C", duration=2000,
                        trace_msg=True)
    try:
        b = await harness.phone("B", "102")
        await call.start()
        incoming = await b.next_incoming()
        await b.wait_hearing({"C"})
        result = (await call.wait()).check()
        await incoming.wait_state("terminated")
        # the premise: SIPp's digest uri is host:port, not the Request-URI it sent
        assert f"INVITE sip:102@{host}:{port} SIP/2.0" in result.messages
        assert f'uri="sip:{host}:{port}"' in result.messages
    finally:
        call.stop()
        call.cleanup()


async def test_strict_digest_uri_check_answers_400_and_says_why(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    async with overlay_harness(tmp_path, lambda _port: "[sip]\ndigest_uri_check = true\n"
                               ) as harness:
        await strict_checks(harness, caplog)


async def strict_checks(harness: Harness, caplog: pytest.LogCaptureFixture) -> None:
    host, port = harness.sip_addr
    refused = sipp_default(harness, "uac_digest_400", "101", service="102", trace_msg=True)
    try:
        with caplog.at_level(logging.WARNING, logger="mediasrv.auth"):
            result = (await refused.run()).check()  # the scenario expects the 400
        assert "SIP/2.0 400 Digest URI Does Not Match Request-URI" in result.messages
        assert [r.getMessage() for r in caplog.records if r.name == "mediasrv.auth"] == [
            f"digest from 127.0.0.1 (user 101): digest uri 'sip:{host}:{port}' is not the "
            f"Request-URI 'sip:102@{host}:{port}'; 400 (sip.digest_uri_check = true)"]
    finally:
        refused.stop()
        refused.cleanup()
    # with the Request-URI as digest uri the same call goes through in strict mode
    b = await harness.phone("B", "102")
    call = sipp_default(harness, "uac_call_rtp", "101", service="102", tone="C", duration=1500,
                        extra=["-auth_uri", f"102@{host}:{port}"])
    try:
        await call.start()
        incoming = await b.next_incoming()
        await b.wait_hearing({"C"})
        (await call.wait()).check()
        await incoming.wait_state("terminated")
    finally:
        call.stop()
        call.cleanup()
