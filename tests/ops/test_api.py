"""The state/control API against a running server, with real SIP calls over loopback."""

from __future__ import annotations

import asyncio

import pytest

from tests.integration.conftest import wait_until
from tests.ops.conftest import TOKEN, OpsHarness

pytestmark = pytest.mark.asyncio


async def talking(ops: OpsHarness, caller: str = "101", callee: str = "102"):
    a = await ops.phone("A", caller)
    b = await ops.phone("B", callee)
    call = await a.call(ops.uri(callee))
    assert await call.wait_final() == 200
    await a.wait_hearing({"B"})
    await b.wait_hearing({"A"})
    return a, b, call, b.active_calls()[0]


# ---------------------------------------------------------------------- access


async def test_token_is_required_except_for_metrics_and_openapi(ops: OpsHarness) -> None:
    missing = await ops.api.get("/v1/calls", token=None)
    assert missing.status == 401
    assert missing.headers["www-authenticate"] == 'Bearer realm="mediasrv"'
    wrong = await ops.api.get("/v1/calls", token="nope")
    assert wrong.status == 401
    assert 'error="invalid_token"' in wrong.headers["www-authenticate"]
    basic = await ops.api.request("GET", "/v1/calls", token=None)
    assert basic.status == 401
    assert (await ops.api.get("/v1/calls")).status == 200
    metrics = await ops.api.get("/metrics", token=None)
    assert metrics.status == 200 and metrics.headers["content-type"].startswith("text/plain")
    assert (await ops.api.get("/openapi.json", token=None)).status == 200


async def test_unknown_paths_and_methods(ops: OpsHarness) -> None:
    assert (await ops.api.get("/v1/nothing")).status == 404
    reply = await ops.api.request("PUT", "/v1/calls/x")
    assert reply.status == 405
    assert set(reply.headers["allow"].split(", ")) == {"GET", "DELETE"}
    assert (await ops.api.get("/v1/calls/no-such-call")).status == 404
    assert (await ops.api.request("DELETE", "/v1/calls/no-such-call")).status == 404


async def test_api_listener_is_gone_after_stop(ops: OpsHarness) -> None:
    port = ops.api.port
    await ops.server.stop()
    with pytest.raises(OSError):
        await asyncio.open_connection("127.0.0.1", port)
    await ops.server.start()  # the fixture's teardown expects a running server
    ops.api.port = ops.server.api.port


# ---------------------------------------------------------------------- state


async def test_registrations(ops: OpsHarness) -> None:
    a = await ops.phone("A", "101")
    await ops.phone("B", "102")
    regs = await ops.api.get_json("/v1/registrations")
    assert [r["extension"] for r in regs] == ["101", "102"]
    mine = regs[0]
    assert mine["contact"] == a.contact.strip("<>")
    assert mine["source"] == f"127.0.0.1:{a.port}" and mine["transport"] == "udp"
    assert 290 < mine["expires_in"] <= 300
    await a.unregister()
    assert [r["extension"] for r in await ops.api.get_json("/v1/registrations")] == ["102"]


async def test_live_call_legs_codecs_and_bridge(ops: OpsHarness) -> None:
    a, b, a_call, b_call = await talking(ops)
    [call] = await ops.api.get_json("/v1/calls")
    assert call["id"] == a_call.call_id
    assert (call["caller"], call["callee"]) == ("101", "102")
    assert call["started_at"] <= call["answered_at"]
    inbound, outbound = call["legs"]
    assert (inbound["number"], inbound["direction"], inbound["state"]) == ("101", "in", "answered")
    assert (outbound["number"], outbound["direction"]) == ("102", "out")
    assert inbound["codec"] == outbound["codec"] == "PCMU"
    assert inbound["remote"] == f"127.0.0.1:{a_call.rtp.port}"
    assert inbound["hears"] == {"kind": "peer", "peer": outbound["id"], "group": [], "name": None}
    assert outbound["hears"]["peer"] == inbound["id"]
    assert call["transfer"] is None and call["conferences"] == []
    assert await ops.api.get_json(f"/v1/calls/{call['id']}") == call
    await a_call.hangup()
    await wait_until(lambda: not ops.server.b2bua.legs, 3, "legs to end")
    assert await ops.api.get_json("/v1/calls") == []


async def test_phone_hold_shows_music_on_hold(ops: OpsHarness) -> None:
    a, b, a_call, b_call = await talking(ops)
    assert await a_call.hold() == 200
    [call] = await ops.api.get_json("/v1/calls")
    inbound, outbound = call["legs"]
    assert inbound["on_hold"] is True
    assert outbound["hears"]["kind"] == "moh" and outbound["hears"]["name"] == "default"
    await a_call.hangup()


async def test_channels_count_rtp_both_ways(ops: OpsHarness) -> None:
    a, b, a_call, b_call = await talking(ops)
    first = {c["leg"]: c for c in await ops.api.get_json("/v1/channels")}
    await asyncio.sleep(0.3)
    second = {c["leg"]: c for c in await ops.api.get_json("/v1/channels")}
    assert len(second) == 2
    for leg, now in second.items():
        before = first[leg]
        assert now["call_id"] == a_call.call_id
        assert now["rx"]["packets"] - before["rx"]["packets"] >= 8  # 20 ms packets for 0.3 s
        assert now["tx"]["packets"] - before["tx"]["packets"] >= 8
        assert now["rx"]["bytes"] == 172 * now["rx"]["packets"]  # 12 header + 160 PCMU
        assert now["rx"]["lost"] == 0 and now["malformed"] == 0
    ports = {c["local_port"] for c in second.values()}
    assert all(p % 2 == 0 for p in ports) and len(ports) == 2
    await a_call.hangup()


# ---------------------------------------------------------------------- actions


async def test_hangup_answered_call(ops: OpsHarness) -> None:
    a, b, a_call, b_call = await talking(ops)
    reply = await ops.api.request("DELETE", f"/v1/calls/{a_call.call_id}")
    assert reply.status == 200
    assert len(reply.json()["legs"]) == 2
    await a_call.wait_state("terminated")
    await b_call.wait_state("terminated")
    assert await ops.api.get_json("/v1/calls") == []


async def test_hangup_ringing_call(ops: OpsHarness) -> None:
    a = await ops.phone("A", "101")
    c = await ops.phone("C", "103", answer=None)
    a_call = await a.call(ops.uri("103"), wait=False)
    c_call = await c.next_incoming()
    await wait_until(lambda: 180 in a_call.provisional, 3, "A to hear ringing")
    [call] = await ops.api.get_json("/v1/calls")
    assert [leg["state"] for leg in call["legs"]] == ["ringing", "ringing"]
    assert (await ops.api.request("DELETE", f"/v1/calls/{call['id']}")).status == 200
    assert await a_call.wait_final() == 480
    await c_call.wait_state("terminated")


async def test_reload_applies_and_refuses_a_bad_configuration(ops: OpsHarness) -> None:
    site = ops.tmp_path / "site"
    (site / "99-zz-ops.toml").write_text(
        (site / "99-zz-ops.toml").read_text().replace(TOKEN, "new-token"))
    reply = await ops.api.request("POST", "/v1/reload")
    assert reply.status == 200 and reply.json()["reloaded"] is True
    assert (await ops.api.get("/v1/calls")).status == 401  # the new token is in force
    ops.api.token = "new-token"
    assert (await ops.api.get("/v1/calls")).status == 200
    (site / "98-broken.toml").write_text("[sip]\nnot_a_key = 1\n")
    before = ops.server.config
    reply = await ops.api.request("POST", "/v1/reload")
    assert reply.status == 422 and "reload refused" in reply.json()["detail"]
    assert ops.server.config is before


async def test_bad_action_bodies(ops: OpsHarness) -> None:
    a, b, a_call, b_call = await talking(ops)
    leg = (await ops.api.get_json("/v1/calls"))[0]["legs"][1]["id"]
    path = f"/v1/legs/{leg}/transfer"
    assert (await ops.api.raw(f"POST {path} HTTP/1.1\r\nAuthorization: Bearer {TOKEN}\r\n"
                              "Content-Length: 5\r\n\r\n{nope".encode())).status == 400
    assert (await ops.api.request("POST", path, [1])).status == 422
    assert (await ops.api.request("POST", path, {"target": "10a"})).status == 422
    assert (await ops.api.request("POST", path, {"service": "nope"})).status == 404
    assert (await ops.api.request("POST", "/v1/legs/leg999/transfer", {})).status == 404
    await a_call.hangup()


# ---------------------------------------------------------------------- event stream


async def test_event_stream_carries_a_calls_life(ops: OpsHarness) -> None:
    stream = await ops.api.events()
    a, b, a_call, b_call = await talking(ops)
    kind, started = await stream.next()
    assert kind == "call.started"
    assert (started["call_id"], started["caller"], started["callee"]) == \
        (a_call.call_id, "101", "102")
    kind, answered = await stream.next()
    assert (kind, answered["number"]) == ("leg.answered", "102")
    await b_call.hangup()
    ended = [await stream.next(), await stream.next()]
    assert [k for k, _ in ended] == ["leg.ended", "leg.ended"]
    assert {e["number"] for _, e in ended} == {"101", "102"}
    for _, e in ended:  # each leg's final RTP counters, read as its stream closed
        assert e["rtp"]["packets_in"] > 0 and e["rtp"]["packets_out"] > 0
        assert e["rtp"]["bytes_in"] == 172 * e["rtp"]["packets_in"]
    stream.close()
    await wait_until(lambda: not ops.server.api.hub.subscribers, 3, "the stream to close")


async def test_event_stream_filter_and_server_stop_ends_it(ops: OpsHarness) -> None:
    stream = await ops.api.events("?kinds=leg.ended")
    a, b, a_call, b_call = await talking(ops)
    await a_call.hangup()
    kind, _ = await stream.next()
    assert kind == "leg.ended"
    await stream.next()
    await ops.settle()
    await ops.server.api.close()
    assert await asyncio.wait_for(stream.reader.read(), 3) == b""  # the stream ended
    assert not ops.server.api.hub.subscribers
    stream.close()
