"""Transfers seen and driven through the API: state, membership, events, metrics, records.

A (101) calls B (102); B transfers A to C (103). Every phone sends its own identity tone, so
each step is also checked by who hears whom.
"""

from __future__ import annotations

import asyncio

import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.integration.conftest import MOH_HZ, wait_until
from tests.ops.conftest import OpsHarness
from tests.ops.test_api import talking
from tests.ops.test_openapi import validate

pytestmark = pytest.mark.moh_tone


def sample(text: str, name: str, **labels: str) -> float:
    """One sample's value from a Prometheus text exposition (0 when absent)."""
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            if s.name == name and all(s.labels.get(k) == v for k, v in labels.items()):
                return s.value
    return 0.0


async def metrics(ops: OpsHarness) -> str:
    return (await ops.api.get("/metrics", token=None)).body.decode()


async def call_view(ops: OpsHarness) -> dict:
    [call] = await ops.api.get_json("/v1/calls")
    return call


async def transfer_state(ops: OpsHarness, state: str, timeout: float = 5.0) -> dict:
    """The call view once its transfer has reached `state`."""
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        call = await call_view(ops)
        if call["transfer"] and call["transfer"]["state"] == state:
            return call
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"transfer never reached {state}: {call['transfer']}")
        await asyncio.sleep(0.05)


async def test_dtmf_transfer_through_three_way_is_visible(ops: OpsHarness) -> None:
    events = await ops.api.events("?kinds=transfer")
    a, b, a_call, b_call = await talking(ops)
    c = await ops.phone("C", "103", answer=None)
    await b_call.send_dtmf("#4")
    await wait_until(lambda: a.hears_freqs(MOH_HZ) and not a.hears(), 3, "A on hold music")
    call = await transfer_state(ops, "COLLECTING")
    a_leg, b_leg = call["legs"]
    assert call["transfer"] == {**call["transfer"], "service": "attended_transfer",
                                "transferer": "102", "transferred": "101"}
    assert a_leg["hears"]["kind"] == "moh" and a_leg["owner"] == "attended_transfer"
    await b_call.send_dtmf("103#")
    c_call = await c.next_incoming()
    call = await transfer_state(ops, "CALLING_TARGET")
    assert [leg["number"] for leg in call["legs"]] == ["101", "102", "103"]
    assert call["legs"][2]["state"] == "ringing"
    await c_call.answer()
    await b.wait_hearing({"C"})
    call = await transfer_state(ops, "CONSULTING")
    b_leg, c_leg = call["legs"][1], call["legs"][2]
    assert b_leg["hears"]["peer"] == c_leg["id"] and c_leg["hears"]["peer"] == b_leg["id"]
    await b_call.send_dtmf("*3")
    for phone in (a, b, c):
        await phone.wait_hearing({"A", "B", "C"} - {phone.name})
    call = await transfer_state(ops, "THREEWAY")
    # the members in the legs' order (leg98 before leg100), which is not their string order
    assert call["conferences"] == [[leg["id"] for leg in call["legs"]]]
    assert all(leg["hears"]["kind"] == "mix" for leg in call["legs"])
    doc = (await ops.api.get("/openapi.json", token=None)).json()
    assert validate(call, {"$ref": "#/components/schemas/Call"}, doc) == []
    await b_call.hangup()
    await a.wait_hearing({"C"})
    await c.wait_hearing({"A"})
    states = []
    while "THREEWAY" not in states:
        _, event = await events.next()
        states.append(event["state"])
    assert states == ["COLLECTING", "CALLING_TARGET", "CONSULTING", "THREEWAY"]
    text = await metrics(ops)
    assert sample(text, "mediasrv_transfers_started_total", service="attended_transfer") == 1
    assert sample(text, "mediasrv_dtmf_digits_total", source="rfc4733") == 8  # #4 103# *3
    assert sample(text, "mediasrv_dtmf_digits_total", source="inband") == 0
    await a_call.hangup()
    await c_call.wait_state("terminated")
    events.close()


async def test_api_starts_an_attended_transfer_that_completes(ops: OpsHarness) -> None:
    a, b, a_call, b_call = await talking(ops)
    c = await ops.phone("C", "103", answer=None)
    b_leg = (await call_view(ops))["legs"][1]
    reply = await ops.api.request("POST", f"/v1/legs/{b_leg['id']}/transfer", {"target": "103"})
    assert reply.status == 202, reply.body
    started = reply.json()
    assert started == {"call_id": a_call.call_id, "leg": b_leg["id"],
                       "service": "attended_transfer", "state": "CALLING_TARGET"}
    c_call = await c.next_incoming()
    await wait_until(lambda: a.hears_freqs(MOH_HZ) and not a.hears(), 3, "A on hold music")
    again = await ops.api.request("POST", f"/v1/legs/{b_leg['id']}/transfer", {})
    assert again.status == 409 and "already in a service" in again.json()["detail"]
    await c_call.answer()
    await b.wait_hearing({"C"})
    await transfer_state(ops, "CONSULTING")
    await b_call.hangup()  # the transferer leaves: A and C are joined
    await a.wait_hearing({"C"})
    await c.wait_hearing({"A"})
    assert (await call_view(ops))["transfer"]["state"] == "COMPLETE"
    text = await metrics(ops)
    assert sample(text, "mediasrv_transfers_total", service="attended_transfer",
                  result="complete") == 1
    assert sample(text, "mediasrv_dtmf_digits_total", source="rfc4733") == 0  # none dialled
    await c_call.hangup()
    await a_call.wait_state("terminated")
    await ops.settle()
    text = await metrics(ops)
    assert sample(text, "mediasrv_calls_total", result="answered") == 1
    assert sample(text, "mediasrv_calls_active") == 0


async def test_api_transfer_refused_while_ringing_and_for_a_leg_without_permission(
        ops: OpsHarness) -> None:
    a = await ops.phone("A", "101")
    await ops.phone("C", "103", answer=None)
    a_call = await a.call(ops.uri("103"), wait=False)
    await wait_until(lambda: 180 in a_call.provisional, 3, "ringing")
    a_leg = (await call_view(ops))["legs"][0]["id"]
    reply = await ops.api.request("POST", f"/v1/legs/{a_leg}/transfer", {"target": "102"})
    assert reply.status == 409 and reply.json()["detail"] == "the leg is not answered"
    assert (await ops.api.request("DELETE", f"/v1/calls/{a_call.call_id}")).status == 200
    assert await a_call.wait_final() == 480


async def test_api_hangup_during_a_transfer_ends_every_leg(ops: OpsHarness) -> None:
    a, b, a_call, b_call = await talking(ops)
    c = await ops.phone("C", "103", answer=None)
    b_leg = (await call_view(ops))["legs"][1]["id"]
    assert (await ops.api.request("POST", f"/v1/legs/{b_leg}/transfer",
                                  {"target": "103"})).status == 202
    c_call = await c.next_incoming()
    reply = await ops.api.request("DELETE", f"/v1/calls/{a_call.call_id}")
    assert len(reply.json()["legs"]) == 3
    for call in (a_call, b_call, c_call):
        await call.wait_state("terminated")
    assert ops.server.services.pending_timers == 0
    assert not any(s.busy for s in ops.server.services.services.values())


@pytest.mark.site('[extensions.102]\nservices = []\n')
async def test_api_transfer_follows_the_extensions_permissions(ops: OpsHarness) -> None:
    a, b, a_call, b_call = await talking(ops)
    b_leg = (await call_view(ops))["legs"][1]["id"]
    reply = await ops.api.request("POST", f"/v1/legs/{b_leg}/transfer", {"target": "103"})
    assert reply.status == 409
    assert reply.json()["detail"] == "extension may not use attended_transfer"
    assert (await call_view(ops))["transfer"] is None
    await a.wait_hearing({"B"})  # nothing reached the call: A still talks to B
    await a_call.hangup()
