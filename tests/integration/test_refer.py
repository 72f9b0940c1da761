"""Transfers from the phone's own keys: REFER (RFC 3515/5589) and Replaces (RFC 3891).

Every test proves by audio who hears whom (each TestPhone sends its own identity tone) and
checks the NOTIFY sipfrag outcome the transferer gets and the events published.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterable

import numpy as np
import pytest

from tests.integration.conftest import Harness, wait_until
from tests.peers import audio
from tests.peers.call import Call
from tests.peers.phone import TestPhone

pytestmark = pytest.mark.asyncio


class ReplacingPhone(TestPhone):
    """A TestPhone whose next INVITE carries a Replaces header (RFC 3891 §6.1)."""

    __test__ = False
    replaces: list[str] = []

    def _request(self, method, uri, from_, to, call_id, cseq, extra=(), body=b"",  # noqa: ANN001
                 ctype="application/sdp"):
        extra = [*extra, *(("Replaces", r) for r in self.replaces)] if method == "INVITE" \
            else extra
        return super()._request(method, uri, from_, to, call_id, cseq, extra, body, ctype)


def replaces_of(call: Call, early_only: bool = False) -> str:
    """The Replaces value naming `call`'s dialog as the server holds it."""
    return (f"{call.call_id};to-tag={call.remote_tag};from-tag={call.local_tag}"
            + (";early-only" if early_only else ""))


class Tape:
    """Frame-by-frame record of what one call hears: (arrival time, tones in the frame)."""

    def __init__(self, call: Call) -> None:
        self.frames: list[tuple[float, set[str]]] = []
        feed = call.hearing.feed

        def record(pcm: np.ndarray, now: float | None = None) -> None:
            feed(pcm, now)
            self.frames.append((time.monotonic(), audio.tones_in(pcm)))
        call.hearing.feed = record  # type: ignore[method-assign]

    def longest_gap(self, tones: Iterable[str], since: float, until: float) -> float:
        """Longest stretch in [since, until] without a frame carrying one of `tones`."""
        wanted = set(tones)
        times = [since] + [t for t, heard in self.frames
                           if since <= t <= until and heard & wanted] + [until]
        return max(b - a for a, b in zip(times, times[1:], strict=False))


async def talking(harness: Harness, a: TestPhone, callee: str) -> Call:
    call = await a.call(harness.uri(callee))
    assert await call.wait_final() == 200
    await a.wait_hearing({callee_name(harness, callee)})
    return call


def callee_name(harness: Harness, ext: str) -> str:
    return next(p.name for p in harness.phones if p.user == ext)


def transfer_events(harness: Harness) -> list[dict[str, object]]:
    events: list[dict[str, object]] = []
    harness.server.b2bua.observers.append(
        lambda e: events.append(e) if e["kind"] == "transfer" else None)
    return events


# ------------------------------------------------------------------------------ blind


async def test_blind_transfer_notifies_and_connects_transferred_to_target(
        harness: Harness) -> None:
    events = transfer_events(harness)
    a = await harness.phone("A", "101")
    b = await harness.phone("B", "102")
    c = await harness.phone("C", "103")
    call = await talking(harness, a, "102")
    await b.wait_hearing({"A"})
    assert await call.refer(harness.uri("103")) == 202
    trying = await call.wait_notify("SIP/2.0 100")
    assert trying.get("Event").startswith("refer")
    assert "message/sipfrag" in trying.get("Content-Type")
    assert trying.get("Subscription-State").startswith("active")
    done = await call.wait_notify("SIP/2.0 200")
    assert done.get("Subscription-State").startswith("terminated")
    await b.wait_hearing({"C"})
    await c.wait_hearing({"B"})
    await call.wait_state("terminated")  # the transferer's leg is released
    states = [(e["phase"], e["state"]) for e in events]
    assert states == [("start", "CALLING_TARGET"), ("progress", "CALLING_TARGET"),
                      ("result", "COMPLETE")]
    assert events[-1]["service"] == "refer" and events[-1]["target"] == "103"
    await c.active_calls()[0].hangup()
    await wait_until(lambda: not b.active_calls(), 3, "B's call to end")


async def test_refer_sub_false_is_honoured(harness: Harness) -> None:
    a = await harness.phone("A", "101")
    b = await harness.phone("B", "102")
    await harness.phone("C", "103")
    call = await talking(harness, a, "102")
    resp_status = await call.refer(harness.uri("103"), refer_sub=False)
    assert resp_status == 202
    accepted = next(m for m in a.received if m.status == 202)
    assert accepted.get("Refer-Sub") == "false"
    await b.wait_hearing({"C"})
    await call.wait_state("terminated")
    assert call.notifies == []
    await b.active_calls()[0].hangup()


async def test_transferer_bye_right_after_202_does_not_stop_the_transfer(
        harness: Harness) -> None:
    a = await harness.phone("A", "101")
    b = await harness.phone("B", "102")
    c = await harness.phone("C", "103", answer_after=0.5)
    call = await talking(harness, a, "102")
    assert await call.refer(harness.uri("103")) == 202
    await call.hangup()
    await b.wait_hearing({"C"}, timeout=4)
    await c.wait_hearing({"B"})
    await b.active_calls()[0].hangup()
    await wait_until(lambda: not c.active_calls(), 3, "C's call to end")


async def test_blind_transfer_to_busy_target_reconnects_the_transferer(
        harness: Harness) -> None:
    events = transfer_events(harness)
    a = await harness.phone("A", "101")
    b = await harness.phone("B", "102")
    await harness.phone("C", "103", answer=486)
    call = await talking(harness, a, "102")
    assert await call.refer(harness.uri("103")) == 202
    await call.wait_notify("SIP/2.0 486")
    await a.wait_hearing({"B"})
    await b.wait_hearing({"A"})
    assert events[-1]["state"] == "FAIL" and events[-1]["status"] == 486
    await call.hangup()


@pytest.mark.site('[extensions.103.failover]\n'
                  'not_registered = { action = "forward", to = "104" }\n')
async def test_blind_transfer_follows_the_target_failover(harness: Harness) -> None:
    a = await harness.phone("A", "101")
    b = await harness.phone("B", "102")
    d = await harness.phone("D", "104")
    call = await talking(harness, a, "102")
    assert await call.refer(harness.uri("103")) == 202  # 103 is not registered: forward
    await call.wait_notify("SIP/2.0 200")
    await b.wait_hearing({"D"})
    await d.wait_hearing({"B"})
    await d.active_calls()[0].hangup()


async def test_transferer_gone_and_target_unreachable_drops_the_transferred(
        harness: Harness) -> None:
    a = await harness.phone("A", "101")
    b = await harness.phone("B", "102")
    call = await talking(harness, a, "102")
    assert await call.refer(harness.uri("103"), refer_sub=False) == 202  # 103 unregistered
    await call.hangup()
    await wait_until(lambda: b.hears_freqs([950]) or not b.active_calls(), 3, "failed tone")
    await wait_until(lambda: not b.active_calls(), 5, "B released after the failed tone")


@pytest.mark.parametrize("refer_to, status", [
    ([], 400),
    (["<sip:103@127.0.0.1>", "<sip:104@127.0.0.1>"], 400),
    (["<sip:103@127.0.0.1>, <sip:104@127.0.0.1>"], 400),
    (["<sip:999@127.0.0.1>"], 404),
])
async def test_bad_refer_is_rejected_and_the_call_goes_on(
        harness: Harness, refer_to: list[str], status: int) -> None:
    a = await harness.phone("A", "101")
    b = await harness.phone("B", "102")
    call = await talking(harness, a, "102")
    resp = await call.request("REFER", [("Refer-To", r) for r in refer_to]
                              + [("Contact", a.contact)])
    assert resp.status == status
    await b.wait_hearing({"A"})
    await a.wait_hearing({"B"})
    await call.hangup()


# ------------------------------------------------------------------------------ attended


async def consultation(harness: Harness) -> tuple[TestPhone, TestPhone, TestPhone, Call, Call]:
    a = await harness.phone("A", "101")
    b = await harness.phone("B", "102")
    c = await harness.phone("C", "103")
    first = await talking(harness, a, "102")
    assert await first.hold() == 200
    second = await talking(harness, a, "103")
    await c.wait_hearing({"A"})
    return a, b, c, first, second


async def test_attended_transfer_joins_the_two_remote_parties(harness: Harness) -> None:
    events = transfer_events(harness)
    a, b, c, first, second = await consultation(harness)
    invites_to_c = len(c.event_times("INVITE"))
    assert await first.refer(harness.uri("103"), replaces=second) == 202
    await first.wait_notify("SIP/2.0 200")
    await b.wait_hearing({"C"})
    await c.wait_hearing({"B"})
    await first.wait_state("terminated")
    await second.wait_state("terminated")
    assert len(c.event_times("INVITE")) == invites_to_c  # joined locally, nothing sent on
    assert [e["state"] for e in events] == ["COMPLETE", "COMPLETE"]
    await c.active_calls()[0].hangup()
    await wait_until(lambda: not b.active_calls(), 3, "B's call to end")


async def test_attended_transfer_survives_the_transferer_bye(harness: Harness) -> None:
    a, b, c, first, second = await consultation(harness)
    refer = asyncio.create_task(first.refer(harness.uri("103"), replaces=second))
    await wait_until(lambda: any(m.status == 202 for m in a.received), 3, "202")
    await asyncio.gather(first.hangup(), second.hangup())
    assert await refer == 202
    await b.wait_hearing({"C"})
    await c.wait_hearing({"B"})
    await b.active_calls()[0].hangup()
    await wait_until(lambda: not c.active_calls(), 3, "C's call to end")


async def test_replaces_naming_a_ringing_call_is_a_blond_transfer(harness: Harness) -> None:
    events = transfer_events(harness)
    a = await harness.phone("A", "101")
    b = await harness.phone("B", "102")
    c = await harness.phone("C", "103", answer=None)
    first = await talking(harness, a, "102")
    assert await first.hold() == 200
    second = await a.call(harness.uri("103"), wait=False)
    ringing = await c.next_incoming()
    await second.wait_state("early")
    assert await first.refer(harness.uri("103"), replaces=second) == 202
    await second.wait_state("terminated")
    await wait_until(lambda: b.hears_freqs(audio.RINGBACK_HZ), 3, "B hears ringback")
    await ringing.answer()
    done = await first.wait_notify("SIP/2.0 200")
    assert done.get("Subscription-State").startswith("terminated")
    await b.wait_hearing({"C"})
    await c.wait_hearing({"B"})
    assert events[0]["state"] == "BLOND" and events[-1]["state"] == "COMPLETE"
    await ringing.hangup()
    await wait_until(lambda: not b.active_calls(), 3, "B's call to end")


SIT_HZ = (950, 1400, 1800)  # the "failed" tone (special information tone)


@pytest.mark.parametrize("outcome", ["answer", "reject"])
async def test_blond_transfer_notifies_the_outcome_to_a_transferer_that_hung_up_after_the_202(
        harness: Harness, outcome: str) -> None:
    """A's Transfer key pressed while its consultation to C still rings: A sends the REFER
    naming that early dialog and hangs up at once. Its BYE ends the call, not the REFER
    subscription (RFC 5057), so A still gets the outcome in a NOTIFY that ends it."""
    a = await harness.phone("A", "101")
    b = await harness.phone("B", "102")
    c = await harness.phone("C", "103", answer=None)
    first = await talking(harness, a, "102")
    assert await first.hold() == 200
    second = await a.call(harness.uri("103"), wait=False)
    ringing = await c.next_incoming()
    await second.wait_state("early")
    assert await first.refer(harness.uri("103"), replaces=second) == 202
    await first.hangup()
    await second.wait_state("terminated")
    await wait_until(lambda: b.hears_freqs(audio.RINGBACK_HZ), 3, "B hears ringback")
    trying = await first.wait_notify("SIP/2.0 100")
    assert trying.get("Subscription-State").startswith("active")
    if outcome == "answer":
        await ringing.answer()
        done = await first.wait_notify("SIP/2.0 200")
        await b.wait_hearing({"C"})
        await c.wait_hearing({"B"})
        await ringing.hangup()
    else:
        await ringing.reject(486)
        done = await first.wait_notify("SIP/2.0 486")
        await wait_until(lambda: b.hears_freqs(SIT_HZ[:1]), 3, "B hears the failed tone")
    assert done.get("Subscription-State").startswith("terminated")
    assert done.get("Event") == trying.get("Event")
    await wait_until(lambda: not b.active_calls(), 5, "B's call to end")


@pytest.mark.parametrize("case, status", [
    ("unknown", 481), ("early_only", 486), ("ended", 603), ("own", 488)])
async def test_bad_replaces_in_refer_is_answered_in_the_notify(
        harness: Harness, case: str, status: int) -> None:
    a, b, c, first, second = await consultation(harness)
    target: Call = second
    if case == "ended":
        gone = await talking(harness, a, "103")
        await gone.hangup()
        target = gone
    elif case == "own":
        target = first
    rep = replaces_of(target, early_only=case == "early_only")
    if case == "unknown":
        rep = f"nosuchcall;to-tag=x;from-tag={second.local_tag}"
    refer_to = f"<{harness.uri('103')}?Replaces={rep.replace(';', '%3B').replace('=', '%3D')}>"
    resp = await first.request("REFER", [("Refer-To", refer_to), ("Contact", a.contact)])
    assert resp.status == 202
    await first.wait_notify(f"SIP/2.0 {status}")
    await c.wait_hearing({"A"})  # nothing moved
    assert first.state == "confirmed" and second.state == "confirmed"
    for call in (first, second):
        await call.hangup()


# ------------------------------------------------------------------------------ INVITE/Replaces


async def test_invite_with_replaces_swaps_the_leg_without_a_gap(harness: Harness) -> None:
    a = await harness.phone("A", "101")
    b = await harness.phone("B", "102")
    d = ReplacingPhone("D", "104", harness.server.config.extensions["104"].password,
                       server=harness.sip_addr)
    await d.start()
    harness.phones.append(d)
    call = await talking(harness, a, "102")
    incoming = b.active_calls()[0]
    await b.wait_hearing({"A"})
    tape = Tape(incoming)
    d.replaces = [replaces_of(call)]
    t0 = time.monotonic()
    new = await d.call(harness.uri("102"))
    assert await new.wait_final() == 200
    await call.wait_state("terminated")  # A's leg was released with a BYE
    await b.wait_hearing({"D"})
    await d.wait_hearing({"B"})
    t1 = time.monotonic()
    assert incoming.state == "confirmed"  # B never noticed a new call
    assert tape.longest_gap({"A", "D"}, t0, t1) <= 0.1
    await new.hangup()
    await incoming.wait_state("terminated")


@pytest.mark.parametrize("case, status", [
    ("unknown", 481), ("early_only", 486), ("ended", 603), ("two", 400), ("theirs", 481)])
async def test_invite_with_bad_replaces_gets_the_rfc3891_answer(
        harness: Harness, case: str, status: int) -> None:
    a = await harness.phone("A", "101")
    await harness.phone("B", "102", answer=None if case == "theirs" else 200)
    d = ReplacingPhone("D", "104", harness.server.config.extensions["104"].password,
                       server=harness.sip_addr)
    await d.start()
    harness.phones.append(d)
    call = await a.call(harness.uri("102"), wait=case != "theirs")
    if case == "theirs":
        await call.wait_state("early")
    rep = replaces_of(call, early_only=case == "early_only")
    if case == "ended":
        await call.hangup()
    d.replaces = {"unknown": ["x;to-tag=1;from-tag=2"], "two": [rep, rep]}.get(case, [rep])
    assert await (await d.call(harness.uri("102"))).wait_final() == status
    if call.state != "terminated":
        await call.hangup()
