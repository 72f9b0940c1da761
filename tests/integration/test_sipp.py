"""SIPp, a real SIP peer no one here wrote, against a live mediasrv (issue 3, item 1).

How this works: each test starts the harness's server on free ports, runs SIPp scenarios from
``tests/sipp`` as subprocesses (``tests.peers.sipp.Sipp``) with the extensions' credentials
(``101``..``109``, password ``demo1NN``), and checks both SIPp's verdict (every expected
message arrived in order: exit code 0) and what the server or a ``TestPhone`` observed. A SIPp
*callee* is made reachable the way a phone is: ``register_auth.xml`` binds its port to an
extension (RFC 3261 §10), then a UAS scenario listens on the same port. Audio is proved by
identity tones (``tests.peers.audio``) or by SIPp's ``-rtp_echo`` sending a phone's own tone
back. The harness ends every test with its leak check.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import AsyncIterator, Callable

import pytest

from tests.integration.conftest import MOH_HZ, Harness, wait_until
from tests.peers.sipp import Sipp, SippResult

pytestmark = [pytest.mark.asyncio, pytest.mark.peer]

SippFactory = Callable[..., Sipp]


def creds(ext: str, password: str | None = None) -> list[tuple[str, str]]:
    """The injection-CSV user list for extension ``ext`` (its demo password by default)."""
    return [(ext, password or f"demo{ext}")]


@contextlib.asynccontextmanager
async def sipp_runs(harness: Harness) -> AsyncIterator[SippFactory]:
    """Make SIPp runs aimed at the harness's server; kill and clean them up afterwards."""
    made: list[Sipp] = []
    host, port = harness.sip_addr

    def make(scenario: str, ext: str = "101", *, uas: bool = False, **kw) -> Sipp:
        kw.setdefault("users", creds(ext))
        run = Sipp(scenario, None if uas else f"{host}:{port}", **kw)
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
    """``sipp(scenario, ext, uas=False, **Sipp options)``: SIPp runs against the server."""
    async with sipp_runs(harness) as make:
        yield make


async def register_callee(make: SippFactory, ext: str, scenario: str, *,
                          transport: list[str] | None = None, **kw) -> Sipp:
    """Bind a SIPp port to extension ``ext``, then start UAS ``scenario`` on that port.
    ``transport`` are SIPp options for both runs (e.g. ``["-t", "t1"]`` for TCP)."""
    reg = make("register_auth", ext, extra=list(transport or []))
    (await reg.run()).check()
    kw["extra"] = [*(transport or []), *kw.get("extra", [])]
    return await make(scenario, ext, uas=True, port=reg.port, **kw).start()


def registered_ports(harness: Harness, ext: str) -> list[int]:
    """The source ports the registrar holds for ``ext`` now."""
    return [b.source_port for b in harness.server.b2bua.registrar.contacts(ext, time.time())]


# ---------------------------------------------------------------------------- registration

async def test_register_with_digest_auth(harness: Harness, sipp: SippFactory) -> None:
    reg = sipp("register_auth", "103")
    (await reg.run()).check()
    assert registered_ports(harness, "103") == [reg.port]


async def test_wrong_password_is_403(harness: Harness, sipp: SippFactory) -> None:
    result = await sipp("register_wrong_password", users=creds("104", "nope")).run()
    result.check()  # the scenario expects 403 after the challenge
    assert registered_ports(harness, "104") == []


async def test_unregister_removes_the_binding(harness: Harness, sipp: SippFactory) -> None:
    reg = sipp("register_auth", "105")
    (await reg.run()).check()
    assert registered_ports(harness, "105") == [reg.port]
    (await sipp("unregister", "105", port=reg.port).run()).check()
    assert registered_ports(harness, "105") == []


# ---------------------------------------------------------------------------- calls

async def test_sipp_caller_is_heard_by_the_callee(harness: Harness, sipp: SippFactory) -> None:
    b = await harness.phone("B", "102")
    uac = await sipp("uac_call_rtp", "101", service="102", tone="C", duration=2500).start()
    incoming = await b.next_incoming()
    await b.wait_hearing({"C"})
    (await uac.wait()).check()
    await incoming.wait_state("terminated")


async def test_sipp_callee_echoes_the_caller_back(harness: Harness, sipp: SippFactory) -> None:
    uas = await register_callee(sipp, "103", "uas_echo", extra=["-rtp_echo"])
    a = await harness.phone("A", "101")
    call = await a.call(harness.uri("103"))
    assert call.final_status == 200
    await a.wait_hearing({"A"})  # A -> server -> SIPp -> server -> A
    await call.hangup()
    (await uas.wait()).check()


async def test_sipp_to_sipp_calls_through_the_server(harness: Harness,
                                                     sipp: SippFactory) -> None:
    uas = await register_callee(sipp, "102", "uas_answer", calls=3)
    uac = await sipp("uac_call_rtp", "101", service="102", calls=3, duration=300).run()
    uac.check()
    (await uas.wait()).check()
    assert uac.successful == 3 and uac.failed == 0


async def test_sipp_caller_cancels(harness: Harness, sipp: SippFactory) -> None:
    uas = await register_callee(sipp, "102", "uas_noanswer")
    (await sipp("uac_cancel", "101", service="102", duration=400).run()).check()
    (await uas.wait()).check()  # the server CANCELled the callee: 200, 487, ACK


async def test_busy_sipp_callee_gives_the_caller_486(harness: Harness,
                                                     sipp: SippFactory) -> None:
    uas = await register_callee(sipp, "102", "uas_busy")
    a = await harness.phone("A", "101")
    assert await (await a.call(harness.uri("102"))).wait_final() == 486
    (await uas.wait()).check()  # the server ACKed the 486


@pytest.mark.site('[extensions.102]\nring_timeout = 1\n')
async def test_unanswered_sipp_callee_is_480(harness: Harness, sipp: SippFactory) -> None:
    uas = await register_callee(sipp, "102", "uas_noanswer")
    a = await harness.phone("A", "101")
    call = await a.call(harness.uri("102"), wait=False)
    assert await call.wait_final(timeout=5) == 480
    assert 180 in call.provisional
    (await uas.wait()).check()  # and the callee was CANCELled


@pytest.mark.moh_tone
async def test_sipp_hold_gives_the_other_party_moh(harness: Harness, sipp: SippFactory) -> None:
    b = await harness.phone("B", "102")
    uac = await sipp("uac_hold", "101", service="102", tone="C", duration=1500).start()
    await b.next_incoming()
    await b.wait_hearing({"C"})
    await wait_until(lambda: b.hears_freqs(MOH_HZ) and not b.hears(), 3, "B to hear only MoH")
    await wait_until(lambda: b.hears() == {"C"} and not b.hears_freqs(MOH_HZ), 3,
                     "B to hear the caller again, without MoH")
    (await uac.wait()).check()


async def test_options_in_and_out_of_dialog(harness: Harness, sipp: SippFactory) -> None:
    b = await harness.phone("B", "102")
    result: SippResult = await sipp("options", "101", service="102", duration=200).run()
    result.check()  # OPTIONS -> 200 (or a challenge), call, OPTIONS in the dialog -> 200, BYE
    assert not b.active_calls()
