"""REFER and Replaces against real peers: SIPp scenarios and baresip's own transfer (issue 6).

How this works: the harness runs a real server on free ports. SIPp, registered as extension
101 (``register_auth.xml``, digest through the runner's injection CSV) and calling a
``TestPhone`` through the server, plays the *transferer*: it sends the REFERs of
``tests/sipp/refer_*.xml`` (RFC 3515, RFC 4488 ``Refer-Sub``, RFC 5589 §6) and checks in the
scenario itself the 202 and each NOTIFY's ``message/sipfrag`` status and subscription state.
Those scenarios run without ``-aa``: SIPp's auto-answer would take the NOTIFYs away from the
scenario. ``tests/sipp/invite_replaces_reject.xml`` sends an INVITE with Replaces naming a
dialog of two ``TestPhone``s and is answered per RFC 3891 §3. baresip (a softphone no one here
wrote) does its own blind transfer with its ``transfer`` command. Who hears whom is proved by
identity tones; the harness ends every test with its leak check.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import AsyncIterator, Callable

import pytest

from tests.integration.conftest import Harness, wait_until
from tests.peers.call import Call
from tests.peers.phone import TestPhone
from tests.peers.sipp import Sipp, SippResult

pytestmark = [pytest.mark.asyncio, pytest.mark.peer]

TRANSFERER = "101"
SIPP_TONE = "A"  # SIPp's identity tone; the TestPhones are B (102), C (103), D (104)

SippFactory = Callable[..., Sipp]


def md5_only(harness: Harness) -> None:
    """Challenge with MD5 alone: SIPp 3.6 and baresip 1.0 answer only the first challenge and
    cannot do SHA-256, which the server offers first."""
    harness.server.b2bua.gatekeeper.digest.algorithms = ("MD5",)


@contextlib.asynccontextmanager
async def sipp_runs(harness: Harness) -> AsyncIterator[SippFactory]:
    """Make SIPp runs (extension 101, every message traced) aimed at the harness's server."""
    made: list[Sipp] = []
    host, port = harness.sip_addr
    md5_only(harness)

    def make(scenario: str, *, service: str = "102", **kw) -> Sipp:
        ext = kw.pop("ext", TRANSFERER)
        extra = kw.pop("extra", [])
        if not scenario.startswith("register"):  # SIPp's digest uri defaults to host:port,
            extra = ["-auth_uri", f"{service}@{host}:{port}", *extra]  # not the Request-URI
        run = Sipp(scenario, f"{host}:{port}", users=[(ext, f"demo{ext}")], service=service,
                   tone=SIPP_TONE, trace_msg=True, extra=extra, **kw)
        made.append(run)
        return run

    try:
        yield make
    finally:
        for run in made:
            run.stop()
            run.cleanup()


@pytest.fixture
async def sipp(harness: Harness) -> AsyncIterator[SippFactory]:
    """``sipp(scenario, service=..., **Sipp options)``: SIPp runs against the server."""
    async with sipp_runs(harness) as make:
        yield make


async def transferer(make: SippFactory, scenario: str, target: str = "103", *,
                     keys: dict[str, str] | None = None, duration: int = 1500) -> Sipp:
    """Register SIPp as extension 101, then start `scenario` calling 102 from that port: it
    talks `duration` ms, then REFERs (to `target`)."""
    reg = make("register_auth")
    (await reg.run()).check()
    return await make(scenario, port=reg.port, duration=duration, auto_answer=False,
                      keys={"target": target, **(keys or {})}).start()


async def incoming_from(phone: TestPhone, run: Sipp) -> Call:
    """The call `run` places to `phone`; on a timeout, fail with SIPp's own report."""
    try:
        return await phone.next_incoming()
    except TimeoutError:
        run.stop()
        result = await run.wait()
        raise AssertionError(f"{result.report()}\n--- messages ---\n{result.messages[-3000:]}") \
            from None


def received_statuses(result: SippResult, method: str) -> list[int]:
    """Status codes of the responses to `method` SIPp received, in order."""
    statuses = []
    for block in result.messages.split("message received")[1:]:
        text = block.split("\n\n", 1)[-1]
        status = re.match(r"\s*SIP/2\.0 (\d{3})", text)
        cseq = re.search(r"^CSeq:\s*\d+\s+(\w+)", text, re.MULTILINE | re.IGNORECASE)
        if status and cseq and cseq.group(1) == method:
            statuses.append(int(status.group(1)))
    return statuses


# ------------------------------------------------------------------------------ SIPp REFER


async def test_sipp_blind_refer_notifies_and_connects_transferred_to_target(
        harness: Harness, sipp: SippFactory) -> None:
    b = await harness.phone("B", "102")
    c = await harness.phone("C", "103")
    uac = await transferer(sipp, "refer_blind")
    incoming = await incoming_from(b, uac)
    await b.wait_hearing({SIPP_TONE})
    result = (await uac.wait()).check()  # 202, NOTIFY 100 active, NOTIFY 200 terminated, BYE
    assert received_statuses(result, "REFER") == [202]
    await b.wait_hearing({"C"})
    await c.wait_hearing({"B"})
    assert incoming.state == "confirmed"  # B's own dialog went on; only its party changed
    await incoming.hangup()
    await wait_until(lambda: not c.active_calls(), 3, "C's call to end")
