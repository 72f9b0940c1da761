"""The SIPp scenarios against each other, against SIPp's own registrar, and against TestPhone."""

import pytest

from tests.peers.phone import TestPhone
from tests.peers.sipp import Sipp

pytestmark = pytest.mark.peer
USERS = [("alice", "secret")]


def at(sipp: Sipp) -> str:
    return f"127.0.0.1:{sipp.port}"


async def run_pair(uas: Sipp, uac_scenario: str, **kw):
    await uas.start()
    uac = await Sipp(uac_scenario, at(uas), **kw).run()
    return uac, await uas.wait()


@pytest.mark.parametrize("scenario, password", [("register_auth", "secret"),
                                                ("register_wrong_password", "wrong"),
                                                ("unregister", "secret")])
async def test_register_scenarios_against_verifying_registrar(scenario, password):
    uac, reg = await run_pair(Sipp("selftest_registrar", users=USERS), scenario,
                              users=[("alice", password)])
    uac.check()
    reg.check()
    assert uac.successful == 1


@pytest.mark.parametrize("password, status", [("secret", 200), ("wrong", 403)])
async def test_testphone_digest_checked_by_sipp(password, status):
    reg = await Sipp("selftest_registrar", users=USERS).start()
    async with TestPhone("A", "alice", password, server=("127.0.0.1", reg.port)) as phone:
        assert (await phone.register()).status == status
    (await reg.wait()).check()


async def test_sipp_caller_to_sipp_callee_two_calls():
    uac, uas = await run_pair(Sipp("uas_answer", calls=2), "uac_call_rtp", calls=2,
                              duration=300)
    uac.check()
    uas.check()
    assert uac.successful == 2


async def test_sipp_cancel_against_sipp_noanswer():
    uac, uas = await run_pair(Sipp("uas_noanswer"), "uac_cancel", duration=200)
    uac.check()
    uas.check()


async def test_bench_scenario_counts_calls():
    uac, uas = await run_pair(Sipp("uas_answer", calls=10), "uac_bench", calls=10, rate=50,
                              duration=0)
    uac.check()
    uas.check()
    assert uac.successful == 10 and uac.failed == 0


async def test_sipp_caller_is_heard_by_testphone():
    async with TestPhone("B") as b:
        uac = await Sipp("uac_call_rtp", f"127.0.0.1:{b.port}", service="b", tone="C",
                         duration=1200).start()
        call = await b.next_incoming()
        await b.wait_hearing({"C"})
        (await uac.wait()).check()
        assert call.state == "terminated"


async def test_testphone_hears_sipp_callee_and_options_in_dialog():
    uas = await Sipp("uas_answer", tone="D").start()
    async with TestPhone("A") as a:
        call = await a.call(f"sip:d@{at(uas)}")
        assert call.final_status == 200 and call.provisional == [180]
        await a.wait_hearing({"D"})
        assert await call.options() == 200
        await call.hangup()
    (await uas.wait()).check()


@pytest.mark.parametrize("scenario, status", [("uas_busy", 486), ("uas_noanswer", 487)])
async def test_testphone_against_failing_callees(scenario, status):
    uas = await Sipp(scenario).start()
    async with TestPhone("A") as a:
        call = await a.call(f"sip:x@{at(uas)}", wait=False)
        if scenario == "uas_noanswer":
            await call.wait_state("early")
            await call.hangup()
        assert await call.wait_final() == status
    (await uas.wait()).check()


async def test_sipp_cancel_against_testphone():
    async with TestPhone("B", answer=None) as b:
        uac = await Sipp("uac_cancel", f"127.0.0.1:{b.port}", duration=200).start()
        call = await b.next_incoming()
        await call.wait_state("terminated")
        assert call.final_status == 487
        (await uac.wait()).check()


async def test_sipp_hold_and_resume_heard_by_testphone():
    async with TestPhone("B") as b:
        uac = await Sipp("uac_hold", f"127.0.0.1:{b.port}", tone="E", duration=900).start()
        call = await b.next_incoming()
        await b.wait_hearing({"E"})
        await b.wait_hearing(set(), timeout=2)
        assert call.rtp.local_direction == "recvonly"
        await b.wait_hearing({"E"}, timeout=2)
        assert call.rtp.local_direction == "sendrecv"
        (await uac.wait()).check()


async def test_options_scenario_against_testphone():
    async with TestPhone("B") as b:
        uac = await Sipp("options", f"127.0.0.1:{b.port}", duration=200).run()
        uac.check()
        assert [m.method for m in b.received if m.is_request].count("OPTIONS") == 2


async def test_failure_report_shows_the_unexpected_message():
    uac, uas = await run_pair(Sipp("uas_busy"), "uac_call_rtp")
    assert not uac.ok and uac.failed == 1
    with pytest.raises(AssertionError, match="486 Busy Here"):
        uac.check()


@pytest.mark.parametrize("password, status", [("secret", 200), ("wrong", 403)])
async def test_testphone_invite_auth_checked_by_sipp(password, status):
    uas = await Sipp("selftest_uas_auth", users=USERS, tone="B").start()
    async with TestPhone("A", "alice", password) as a:
        call = await a.call(f"sip:x@{at(uas)}")
        assert call.final_status == status
        assert [r.status for r in call.responses][-1] == status
        if status == 200:
            await a.wait_hearing({"B"})
            await call.hangup()
    (await uas.wait()).check()


async def test_sipp_caller_auth_path_against_sipp():
    uac, uas = await run_pair(Sipp("selftest_uas_auth", users=USERS), "uac_call_rtp",
                              users=USERS, duration=300)
    uac.check()
    uas.check()
