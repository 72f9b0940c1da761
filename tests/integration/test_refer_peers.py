"""REFER and Replaces against real peers: SIPp scenarios and baresip's own transfer (issue 6).

How this works: the harness runs a real server on free ports.
- SIPp, registered as extension 101 (``register_auth.xml``, digest through the runner's
  injection CSV) and calling a ``TestPhone`` through the server, plays the *transferer*: it
  sends the REFERs of ``tests/sipp/refer_*.xml`` (RFC 3515, RFC 4488 ``Refer-Sub``, RFC 5589
  §6/§7, over UDP and TCP) and checks in the scenario itself the 202 and each NOTIFY's
  ``message/sipfrag`` status and subscription state. Those scenarios run without ``-aa``, so
  a NOTIFY the scenario does not expect fails the run instead of being answered 200 by SIPp's
  auto-answer. What SIPp received is also read back from its message trace.
- ``tests/sipp/invite_replaces_*.xml`` send an INVITE with Replaces naming a dialog of two
  ``TestPhone``s: RFC 3891 §3 refusals (400, 481, 486, 603) and acceptances (take over a
  confirmed call; pick up a ringing one by naming the server's early dialog).
- baresip (a softphone no one here wrote) does its own blind transfer with its ``transfer``
  command, is transferred by a phone, and transfers a direct-media call. When a transfer
  fails (404 on the REFER, or NOTIFY 486) baresip 1.0's menu module destroys its own call,
  so the server's "give the call back" cannot be heard with baresip: those tests check that
  the failure reached it and that everything is released.
Who hears whom is proved by identity tones; the harness ends every test with its leak check.
"""

from __future__ import annotations

import re
import time
from collections.abc import AsyncIterator, Callable
from urllib.parse import quote

import pytest

from tests.integration.conftest import MOH_HZ, Harness, MakeBaresip, wait_until
from tests.integration.test_refer import Tape, transfer_events
from tests.integration.test_sipp import sipp_runs
from tests.peers import audio
from tests.peers.baresip import Baresip
from tests.peers.call import Call
from tests.peers.phone import TestPhone
from tests.peers.sipp import Sipp, SippResult

pytestmark = [pytest.mark.asyncio, pytest.mark.peer]

TRANSFERER = "101"
SIPP_TONE = "A"  # SIPp's identity tone; the TestPhones are B (102), C (103), D (104)

SippFactory = Callable[..., Sipp]
TRANSPORTS = {"udp": [], "tcp": ["-t", "t1"]}  # SIPp options: one UDP socket / one TCP link


@pytest.fixture
async def sipp(harness: Harness) -> AsyncIterator[SippFactory]:
    """``sipp(scenario, service="102", ext="101", uas=False, **Sipp options)``: SIPp runs
    against the server, every message traced (test_sipp's factory, transferer defaults)."""
    async with sipp_runs(harness) as base:
        def make(scenario: str, *, service: str = "102", **kw) -> Sipp:
            kw.setdefault("tone", SIPP_TONE)
            kw.setdefault("trace_msg", True)
            if not scenario.startswith("register"):  # REGISTER signs its own Request-URI
                kw["service"] = service
            return base(scenario, kw.pop("ext", TRANSFERER), **kw)

        yield make


async def transferer(make: SippFactory, scenario: str, target: str = "103", *,
                     keys: dict[str, str] | None = None, duration: int = 1500,
                     transport: list[str] | None = None) -> Sipp:
    """Register SIPp as extension 101, then start `scenario` calling 102 from that port: it
    talks `duration` ms, then REFERs (to `target`). `transport`: SIPp options for both runs
    (``["-t", "t1"]`` for TCP)."""
    reg = make("register_auth", extra=list(transport or []))
    (await reg.run()).check()
    return await make(scenario, port=reg.port, duration=duration, auto_answer=False,
                      keys={"target": target, **(keys or {})},
                      extra=list(transport or [])).start()


async def incoming_from(phone: TestPhone, run: Sipp) -> Call:
    """The call `run` places to `phone`; on a timeout, fail with SIPp's own report."""
    try:
        return await phone.next_incoming()
    except TimeoutError:
        run.stop()
        result = await run.wait()
        raise AssertionError(f"{result.report()}\n--- messages ---\n{result.messages[-3000:]}") \
            from None


def received(result: SippResult) -> list[tuple[str, str, str]]:
    """(start line, CSeq method, body) of every message SIPp received, in order."""
    found = []
    for block in result.messages.split("message received")[1:]:
        block = block.split("\n-----", 1)[0]  # up to the next trace entry (a sent message)
        text = block.split("\n\n", 1)[-1].lstrip()
        head, _, body = text.replace("\r\n", "\n").partition("\n\n")
        cseq = re.search(r"^CSeq:\s*\d+\s+(\w+)", head, re.MULTILINE | re.IGNORECASE)
        found.append((head.split("\n", 1)[0].strip(), cseq.group(1) if cseq else "", body))
    return found


def sipfrags(result: SippResult) -> list[int]:
    """The distinct statuses the NOTIFYs SIPp received carried (RFC 3420 sipfrag), in order."""
    return list(dict.fromkeys(int(body.split()[1]) for line, _, body in received(result)
                              if line.startswith("NOTIFY ") and body.startswith("SIP/2.0 ")))


def received_statuses(result: SippResult, method: str) -> list[int]:
    """The distinct final statuses SIPp received for `method`, in order (a retransmitted
    response counts once)."""
    codes = [int(line.split()[1]) for line, cseq, _ in received(result)
             if cseq == method and line.startswith("SIP/2.0 ")]
    return list(dict.fromkeys(c for c in codes if c >= 200))


def received_requests(result: SippResult) -> list[str]:
    """Methods of the requests SIPp received, in order."""
    return [line.split()[0] for line, _, _ in received(result) if not line.startswith("SIP/")]


# ------------------------------------------------------------------------------ SIPp REFER


@pytest.mark.moh_tone
async def test_sipp_blind_refer_from_a_held_call_connects_without_hold_music(
        harness: Harness, sipp: SippFactory) -> None:
    """Desk phones hold the call (re-INVITE sendonly) before their REFER."""
    b = await harness.phone("B", "102")
    c = await harness.phone("C", "103")
    uac = await transferer(sipp, "refer_held")
    incoming = await incoming_from(b, uac)
    await b.wait_hearing({SIPP_TONE})
    await wait_until(lambda: b.hears_freqs(MOH_HZ), 3, "B to hear hold music")
    result = (await uac.wait()).check()  # hold, REFER 202, NOTIFY 100 and 200, BYE
    assert sipfrags(result) == [100, 200]
    await b.wait_hearing({"C"})
    await c.wait_hearing({"B"})
    await wait_until(lambda: not b.hears_freqs(MOH_HZ), 2, "B's hold music to stop")
    assert b.hears() == {"C"} and not c.hears_freqs(MOH_HZ)
    await incoming.hangup()
    await wait_until(lambda: not c.active_calls(), 3, "C's call to end")


REFER_TO_FORMS = {  # the Refer-To shapes of RFC 3515 §2.1 (name-addr / addr-spec, compact r)
    "name-addr": "Refer-To: <{uri}>",
    "addr-spec": "Refer-To: {uri}",
    "display name and uri parameter": 'Refer-To: "Carol" <{uri};user=phone>',
    "compact form": "r: <{uri}>",
}


@pytest.mark.parametrize("form", list(REFER_TO_FORMS))
async def test_sipp_blind_refer_notifies_and_connects_transferred_to_target(
        harness: Harness, sipp: SippFactory, form: str) -> None:
    b = await harness.phone("B", "102")
    c = await harness.phone("C", "103")
    line = REFER_TO_FORMS[form].format(uri=harness.uri("103"))
    uac = await transferer(sipp, "refer_blind", keys={"refer_to": line})
    incoming = await incoming_from(b, uac)
    await b.wait_hearing({SIPP_TONE})
    result = (await uac.wait()).check()  # 202, NOTIFY 100 active, NOTIFY 200 terminated, BYE
    assert received_statuses(result, "REFER") == [202] and sipfrags(result) == [100, 200]
    await b.wait_hearing({"C"})
    await c.wait_hearing({"B"})
    assert incoming.state == "confirmed"  # B's own dialog went on; only its party changed
    await incoming.hangup()
    await wait_until(lambda: not c.active_calls(), 3, "C's call to end")


@pytest.mark.parametrize("transport", ["udp", "tcp"])
async def test_sipp_refer_sub_false_gets_202_and_no_notify(
        harness: Harness, sipp: SippFactory, transport: str) -> None:
    b = await harness.phone("B", "102")
    c = await harness.phone("C", "103")
    uac = await transferer(sipp, "refer_nosub", transport=TRANSPORTS[transport])
    incoming = await incoming_from(b, uac)
    await b.wait_hearing({SIPP_TONE})
    result = (await uac.wait()).check()  # 202 echoing Refer-Sub: false, then only the BYE
    assert received_statuses(result, "REFER") == [202]
    assert set(received_requests(result)) == {"BYE"}  # no NOTIFY, only the release
    await b.wait_hearing({"C"})
    await c.wait_hearing({"B"})
    await incoming.hangup()
    await wait_until(lambda: not c.active_calls(), 3, "C's call to end")


@pytest.mark.parametrize("transport", ["udp", "tcp"])
async def test_sipp_transferer_bye_right_after_the_202_does_not_stop_the_transfer(
        harness: Harness, sipp: SippFactory, transport: str) -> None:
    seen: list[tuple[str, object, object]] = []
    harness.server.b2bua.observers.append(
        lambda e: seen.append((e["kind"], e.get("number"), e.get("phase"))))
    b = await harness.phone("B", "102")
    c = await harness.phone("C", "103", answer_after=0.7)
    uac = await transferer(sipp, "refer_then_bye", transport=TRANSPORTS[transport])
    incoming = await incoming_from(b, uac)
    await b.wait_hearing({SIPP_TONE})
    result = (await uac.wait()).check()  # 202, NOTIFY 100, own BYE, then the final NOTIFY
    assert set(received_requests(result)) == {"NOTIFY"} and sipfrags(result) == [100, 200]
    await b.wait_hearing({"C"})
    await c.wait_hearing({"B"})
    gone = seen.index(("leg.ended", TRANSFERER, None))
    assert gone < seen.index(("transfer", None, "result"))  # it left while C still rang
    await incoming.hangup()
    await wait_until(lambda: not c.active_calls(), 3, "C's call to end")


async def test_sipp_callee_is_transferred_and_talks_to_the_target(
        harness: Harness, sipp: SippFactory) -> None:
    reg = sipp("register_auth", ext="102")
    (await reg.run()).check()
    uas = await sipp("uas_echo", ext="102", uas=True, port=reg.port, auto_answer=False,
                     extra=["-rtp_echo"]).start()  # without -aa any stray request fails it
    b = await harness.phone("B", TRANSFERER)
    c = await harness.phone("C", "103")
    call = await b.call(harness.uri("102"))
    await b.wait_hearing({"B"})  # B -> server -> SIPp (echo) -> server -> B
    assert await call.refer(harness.uri("103")) == 202
    await call.wait_notify("SIP/2.0 200")
    await call.wait_state("terminated")
    await c.wait_hearing({"C"})  # the transferred SIPp now echoes C: media both ways
    await c.active_calls()[0].hangup()
    result = (await uas.wait()).check()  # INVITE, ACK, then only the server's BYE
    assert set(received_requests(result)) == {"INVITE", "ACK", "BYE"}


@pytest.mark.parametrize("consultation", ["answered", "ringing"])
async def test_sipp_attended_refer_with_replaces_joins_the_parties_locally(
        harness: Harness, sipp: SippFactory, consultation: str) -> None:
    """SIPp's REFER names, in Refer-To ``?Replaces=``, the dialog D holds with the server
    while D talks to (or rings) C: B and C are joined here, no INVITE goes on (RFC 5589 §7);
    naming a ringing call is the spec's blond transfer."""
    events = transfer_events(harness)
    b = await harness.phone("B", "102")
    c = await harness.phone("C", "103", answer=200 if consultation == "answered" else None)
    d = await harness.phone("D", "104")
    consult = await d.call(harness.uri("103"), wait=consultation == "answered")
    at_c = await c.next_incoming()
    await consult.wait_state("confirmed" if consultation == "answered" else "early")
    rep = quote(replaces_line(consult).removeprefix("Replaces: "), safe="")
    keys = {"refer_to": f"Refer-To: <{harness.uri('103')}?Replaces={rep}>"}
    uac = await transferer(sipp, "refer_blind", keys=keys)
    incoming = await incoming_from(b, uac)
    await b.wait_hearing({SIPP_TONE})
    await consult.wait_state("terminated", timeout=4)  # D's leg is released
    if consultation == "ringing":
        await wait_until(lambda: b.hears_freqs(audio.RINGBACK_HZ), 3, "B to hear ringback")
        await at_c.answer()
    result = (await uac.wait()).check()  # 202, NOTIFY 100, NOTIFY 200, BYE
    await b.wait_hearing({"C"})
    await c.wait_hearing({"B"})
    assert len(c.event_times("INVITE")) == 1  # joined locally: nothing new went to C
    assert events[-1]["state"] == "COMPLETE" and received_statuses(result, "REFER") == [202]
    await incoming.hangup()
    await at_c.wait_state("terminated")


def refer_to(harness: Harness, ext: str) -> str:
    """A whole Refer-To header line naming extension `ext` at the server."""
    return f"Refer-To: <{harness.uri(ext)}>"


REJECTED = {
    "no Refer-To": (None, None, 400),
    "two Refer-To": ("103", "104", 400),
    "unknown extension": ("999", None, 404),
    "the transferred party itself": ("102", None, 403),  # it would ring B with its own call
}


@pytest.mark.parametrize("case", list(REJECTED))
async def test_sipp_refer_rejected_on_the_refer_and_the_call_goes_on(
        harness: Harness, sipp: SippFactory, case: str) -> None:
    first, second, status = REJECTED[case]
    events = transfer_events(harness)
    b = await harness.phone("B", "102")
    await harness.phone("C", "103")
    await harness.phone("D", "104")
    keys = {f"refer_to_{i}": refer_to(harness, ext) if ext else f"X-Refer-Test: {case}"
            for i, ext in ((1, first), (2, second))}
    uac = await transferer(sipp, "refer_reject", keys=keys)
    incoming = await incoming_from(b, uac)
    tape = Tape(incoming)
    await b.wait_hearing({SIPP_TONE})
    since = time.monotonic()
    result = (await uac.wait()).check()  # the refusal, no NOTIFY, talk 2 s, BYE
    assert received_statuses(result, "REFER") == [status]
    assert received_requests(result) == [] and events == []
    await incoming.wait_state("terminated")
    bye = b.event_times("BYE")[-1]
    assert tape.longest_gap({SIPP_TONE}, since, bye - 0.1) <= 0.1  # the call went on


FAILS = {  # case: (how 103 is reached, site config, the final sipfrag)
    "busy": ("486", "", 486),
    "not registered": (None, "", 480),
    "no answer": ("ring", "[extensions.103]\nring_timeout = 1\n", 480),
}


@pytest.mark.parametrize("case, transport", [
    *(pytest.param(case, "udp", marks=[pytest.mark.site(site)] if site else [])
      for case, (_, site, _) in FAILS.items()), ("busy", "tcp")])
async def test_sipp_blind_refer_that_fails_notifies_and_gives_the_call_back(
        harness: Harness, sipp: SippFactory, case: str, transport: str) -> None:
    reach, _, status = FAILS[case]
    events = transfer_events(harness)
    b = await harness.phone("B", "102")
    if reach is not None:
        # A busy answer 0.3 s after the INVITE, as a phone's would come: an instant 486 puts
        # NOTIFY "486" right behind NOTIFY "100 Trying", and SIPp over TCP, reading both in
        # one segment before it answers the first, aborts the call.
        await harness.phone("C", "103", answer=486 if reach == "486" else None,
                            answer_after=0.3 if reach == "486" else 0.0)
    uac = await transferer(sipp, "refer_fails", transport=TRANSPORTS[transport])
    incoming = await incoming_from(b, uac)
    await b.wait_hearing({SIPP_TONE})
    await wait_until(lambda: any(e["phase"] == "result" for e in events), 5, "the transfer result")
    assert (events[-1]["state"], events[-1]["status"]) == ("FAIL", status)
    await b.wait_hearing({SIPP_TONE})  # given back to the transferer, which talks on 2 s
    result = (await uac.wait()).check()  # NOTIFY 100 active, NOTIFY 4xx terminated, own BYE
    assert received_statuses(result, "REFER") == [202] and sipfrags(result) == [100, status]
    assert set(received_requests(result)) == {"NOTIFY"}  # and no BYE: SIPp hung up itself
    await incoming.wait_state("terminated")


# ----------------------------------------------------------------------- SIPp INVITE/Replaces


def replaces_line(call: Call, early_only: bool = False) -> str:
    """A Replaces header naming `call`'s dialog as the server holds it (RFC 3891 §6.1: the
    to-tag is the server's, the from-tag the phone's)."""
    flag = ";early-only" if early_only else ""
    return f"Replaces: {call.call_id};to-tag={call.remote_tag};from-tag={call.local_tag}{flag}"


REPLACES = {  # case: (the A->B call is answered, status RFC 3891 §3 asks for)
    "unknown dialog": (True, 481),
    "early dialog the server did not start": (False, 481),
    "early-only on a confirmed dialog": (True, 486),
    "terminated dialog": (True, 603),
    "two Replaces": (True, 400),
}


@pytest.mark.parametrize("case", list(REPLACES))
async def test_sipp_invite_with_bad_replaces_gets_the_rfc3891_answer(
        harness: Harness, sipp: SippFactory, case: str) -> None:
    answered, status = REPLACES[case]
    a = await harness.phone("A", "101")
    b = await harness.phone("B", "102", answer=200 if answered else None)
    call = await a.call(harness.uri("102"), wait=answered)
    await call.wait_state("confirmed" if answered else "early")
    lines = {"unknown dialog": [f"Replaces: nosuchcall;to-tag=1;from-tag={call.local_tag}"],
             "early-only on a confirmed dialog": [replaces_line(call, early_only=True)],
             "two Replaces": [replaces_line(call)] * 2}.get(case, [replaces_line(call)])
    if case == "terminated dialog":
        await call.hangup()
    invites_at_b = len(b.event_times("INVITE"))
    keys = {f"replaces_{i}": line for i, line in enumerate(lines, 1)}
    keys.setdefault("replaces_2", f"X-Replaces-Test: {case}")
    result = (await sipp("invite_replaces_reject", ext="104", keys=keys).run()).check()
    assert received_statuses(result, "INVITE") == [401, status]
    assert len(b.event_times("INVITE")) == invites_at_b  # nothing went on to B
    if answered and case != "terminated dialog":
        await a.wait_hearing({"B"})  # the named call was not touched
        await b.wait_hearing({"A"})
    await call.hangup()


# ------------------------------------------------------------------------------ baresip


class TcpBaresip(Baresip):
    """A baresip whose account reaches the server over TCP (``;transport=tcp`` outbound)."""

    def _account(self) -> str:
        assert self.registrar is not None
        plain = 'outbound="sip:{}:{}"'.format(*self.registrar)
        return super()._account().replace(plain, plain[:-1] + ';transport=tcp"')


@pytest.mark.parametrize("transport", ["udp", "tcp"])
async def test_baresip_transfer_command_connects_its_caller_to_the_target(
        harness: Harness, baresip: MakeBaresip, transport: str) -> None:
    events = transfer_events(harness)
    bob = await baresip("107", "E", kind=TcpBaresip if transport == "tcp" else Baresip)
    flows = harness.server.b2bua.registrar.contacts("107", time.time())
    assert [f.transport for f in flows] == [transport], flows
    a = await harness.phone("A", "101")
    c = await harness.phone("C", "103")
    call = await a.call(harness.uri("107"))
    assert call.final_status == 200
    await a.wait_hearing({"E"})
    await bob.wait_hearing({"A"})
    since = len(bob.events)
    assert (await bob.transfer(harness.uri("103"))).get("ok"), bob.log[-2000:]
    await a.wait_hearing({"C"}, timeout=5)
    await c.wait_hearing({"A"})
    await bob.wait_event("CALL_CLOSED", since=since)
    assert call.state == "confirmed"  # A's own dialog went on; only its party changed
    assert [(e["phase"], e["state"]) for e in events][-1] == ("result", "COMPLETE")
    await call.hangup()
    await wait_until(lambda: not c.active_calls(), 3, "C's call to end")


async def refused_transfer(harness: Harness, bob: Baresip, target: str) -> None:
    """A calls baresip, baresip transfers it to `target` and the transfer fails: baresip's
    menu module (1.0) then destroys its own call (TRANSFER_FAILED, a BYE, and no
    CALL_CLOSED event), so the server ends A's call too."""
    a = await harness.phone("A", "101")
    call = await a.call(harness.uri("107"))
    await a.wait_hearing({"E"})
    since = len(bob.events)
    await bob.transfer(harness.uri(target))
    await bob.wait_event("TRANSFER_FAILED", since=since)
    await call.wait_state("terminated")  # baresip's BYE ended the call on both sides


async def test_baresip_transfer_to_a_busy_target_learns_486_from_the_notify(
        harness: Harness, baresip: MakeBaresip) -> None:
    events = transfer_events(harness)
    bob = await baresip("107", "E")
    c = await harness.phone("C", "103", answer=486)
    await refused_transfer(harness, bob, "103")
    assert "transfer failed: 486 Busy Here" in bob.log, bob.log[-1500:]  # from NOTIFY sipfrag
    assert (events[-1]["phase"], events[-1]["state"], events[-1]["status"]) == (
        "result", "FAIL", 486)
    assert len(c.event_times("INVITE")) == 1 and not c.active_calls()


async def test_baresip_transfer_to_an_unknown_extension_is_refused_with_404(
        harness: Harness, baresip: MakeBaresip) -> None:
    events = transfer_events(harness)
    bob = await baresip("107", "E")
    await refused_transfer(harness, bob, "999")
    assert "transfer failed: 404" in bob.log, bob.log[-1500:]
    assert events == []  # refused on the REFER itself: no transfer started


async def test_sipp_invite_with_replaces_takes_over_a_confirmed_call(
        harness: Harness, sipp: SippFactory) -> None:
    b = await harness.phone("B", "102")
    c = await harness.phone("C", "103")
    call = await b.call(harness.uri("103"))
    at_c = await c.next_incoming()
    await c.wait_hearing({"B"})
    tape = Tape(at_c)
    keys = {"replaces_1": replaces_line(call), "replaces_2": "X-Replaces-Test: takeover"}
    run = await sipp("invite_replaces_accept", ext="104", service="103", keys=keys,
                     duration=2000).start()
    since = time.monotonic()
    await call.wait_state("terminated")  # B's leg was released with a BYE
    await c.wait_hearing({SIPP_TONE})
    assert tape.longest_gap({"B", SIPP_TONE}, since, time.monotonic()) <= 0.1  # no gap
    assert at_c.state == "confirmed" and len(c.event_times("INVITE")) == 1  # C saw no new call
    result = (await run.wait()).check()
    assert received_statuses(result, "INVITE") == [401, 200]
    await at_c.wait_state("terminated")  # SIPp's BYE ends the call it took over


@pytest.mark.site("[extensions.101]\ndirect_media = true\n[extensions.102]\ndirect_media = true\n")
async def test_sipp_invite_with_replaces_takes_over_a_direct_media_call_without_a_gap(
        harness: Harness, sipp: SippFactory) -> None:
    """The replaced phone talked straight to B: B is re-INVITEd back to the server's media
    and hears SIPp (which does not allow direct media) with no gap."""
    a = await harness.phone("A", "101")
    b = await harness.phone("B", "102")
    call = await a.call(harness.uri("102"))
    at_b = await b.next_incoming()
    rtp = harness.server.config.rtp
    await wait_until(lambda: call.rtp.remote is not None
                     and not rtp.port_min <= call.rtp.remote[1] <= rtp.port_max, 3,
                     "A's media to go straight to B")
    await b.wait_hearing({"A"})
    tape = Tape(at_b)
    keys = {"replaces_1": replaces_line(call), "replaces_2": "X-Replaces-Test: direct"}
    run = await sipp("invite_replaces_accept", ext="104", service="102", keys=keys,
                     duration=2500).start()
    since = time.monotonic()
    await call.wait_state("terminated")
    await b.wait_hearing({SIPP_TONE}, timeout=4)
    assert tape.longest_gap({"A", SIPP_TONE}, since, time.monotonic()) <= 0.1
    assert rtp.port_min <= at_b.rtp.remote[1] <= rtp.port_max  # anchored again
    (await run.wait()).check()
    await at_b.wait_state("terminated")


async def test_sipp_invite_with_replaces_picks_up_a_ringing_call(
        harness: Harness, sipp: SippFactory) -> None:
    b = await harness.phone("B", "102")
    c = await harness.phone("C", "103", answer=None)
    call = await b.call(harness.uri("103"), wait=False)
    ringing = await c.next_incoming()
    await call.wait_state("early")
    keys = {"replaces_1": replaces_line(ringing), "replaces_2": "X-Replaces-Test: pickup"}
    run = await sipp("invite_replaces_accept", ext="104", service="103", keys=keys,
                     duration=2000).start()
    assert await call.wait_final() == 200  # B is answered by the one who picked up
    await ringing.wait_state("terminated")  # C stops ringing (CANCEL)
    await b.wait_hearing({SIPP_TONE})
    result = (await run.wait()).check()
    assert received_statuses(result, "INVITE") == [401, 200]
    await call.wait_state("terminated")


async def test_baresip_is_transferred_by_a_phone_and_hears_the_target(
        harness: Harness, baresip: MakeBaresip) -> None:
    bob = await baresip("107", "E")
    b = await harness.phone("B", TRANSFERER)
    c = await harness.phone("C", "103")
    call = await b.call(harness.uri("107"))
    await bob.wait_hearing({"B"})
    since = len(bob.events)
    assert await call.refer(harness.uri("103")) == 202
    await call.wait_notify("SIP/2.0 200")
    await bob.wait_hearing({"C"})  # a new RTP source behind the same stream, no re-INVITE
    await c.wait_hearing({"E"})
    assert "CALL_REMOTE_SDP" not in [e.get("type") for e in bob.events[since:]]  # no re-INVITE
    await c.active_calls()[0].hangup()
    await bob.wait_event("CALL_CLOSED", since=since)


DIRECT = "[extensions.101]\ndirect_media = true\n[extensions.107]\ndirect_media = true\n"


@pytest.mark.site(DIRECT)
async def test_baresip_transfer_of_a_direct_media_call_takes_the_media_back(
        harness: Harness, baresip: MakeBaresip) -> None:
    events = transfer_events(harness)
    bob = await baresip("107", "E")
    a = await harness.phone("A", "101")
    # C answers at once: the transfer may release baresip's leg before baresip's 200 to our
    # re-INVITE taking the media back arrives (that late answer must be ignored, not applied).
    c = await harness.phone("C", "103")
    call = await a.call(harness.uri("107"))
    rtp = harness.server.config.rtp
    await wait_until(lambda: call.rtp.remote is not None
                     and not rtp.port_min <= call.rtp.remote[1] <= rtp.port_max, 3,
                     "A's media to go straight to baresip")
    await a.wait_hearing({"E"})
    await bob.wait_hearing({"A"})
    since = len(bob.events)
    assert (await bob.transfer(harness.uri("103"))).get("ok"), bob.log[-2000:]
    await a.wait_hearing({"C"}, timeout=5)
    await c.wait_hearing({"A"})
    assert rtp.port_min <= call.rtp.remote[1] <= rtp.port_max  # anchored again
    await bob.wait_event("CALL_CLOSED", since=since)
    assert events[-1]["state"] == "COMPLETE" and events[-1]["failover"] is False
    await call.hangup()
    await wait_until(lambda: not c.active_calls(), 3, "C's call to end")
