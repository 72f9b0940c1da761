"""Kamailio + 3 mediasrv nodes, real processes on loopback (issue 14).

Phones (TestPhone) register to Kamailio, which authenticates them from the subscriber table
`mediasrv export-subscribers` wrote, dispatches their INVITEs to the nodes (hash over the
caller) with P-Asserted-Identity, and finds them in its location table when a node calls an
extension. Proved by audio: every phone sends its own tone and the tests assert who hears whom.
"""

from __future__ import annotations

import asyncio
import json
import signal
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import soundfile

from mediasrv.config import DEFAULT_CONFIG_DIR
from tests.integration.cluster import TOKEN, Cluster, Node, require_kamailio
from tests.integration.postgres import require_postgres
from tests.integration.test_refer import ReplacingPhone, replaces_of
from tests.peers import audio
from tests.peers.call import Call, until
from tests.peers.phone import TestPhone

# one xdist worker runs the clusters one after another: two at once (Kamailio + 3 nodes
# each) failed to start under `make test`
pytestmark = [pytest.mark.asyncio, pytest.mark.xdist_group("kamailio")]

# Five identity tones: callers 100-104 are A-E, callees 105-109 are B-E, A, so no call's
# two ends share a tone and a crossed call would be heard.
NAMES = dict(zip([str(e) for e in range(100, 110)], "ABCDEBCDEA", strict=True))


# 104 is never registered in these tests: its calls end in its voicemail, on whichever node
VOICEMAIL_104 = '[extensions.104.failover]\nnot_registered = { action = "voicemail" }\n'


@pytest.fixture
async def cluster(tmp_path: Path) -> AsyncIterator[Cluster]:
    require_kamailio()
    c = Cluster(tmp_path, site_extra=VOICEMAIL_104)
    try:
        await c.start()
        yield c
    finally:
        await c.stop()


async def phones(c: Cluster, *exts: str) -> dict[str, TestPhone]:
    return {ext: await c.phone(NAMES[ext], ext) for ext in exts}


async def talking(c: Cluster, p: dict[str, TestPhone], caller: str, callee: str
                  ) -> tuple[Call, Call, Node]:
    """`caller` calls `callee` through Kamailio; both hear each other. Returns both ends and
    the node the call landed on."""
    call = await p[caller].call(c.uri(callee))
    assert await call.wait_final() == 200, c.logs()
    incoming = next(x for x in p[callee].active_calls() if x.call_id != call.call_id)
    await call.wait_hearing({NAMES[callee]})
    await incoming.wait_hearing({NAMES[caller]})
    return call, incoming, c.node_of(incoming.invite)


async def new_incoming(phone: TestPhone, before: list[Call]) -> Call:
    await until(lambda: len(phone.calls) > len(before), 5, lambda: f"{phone.name}: no call")
    return next(x for x in phone.calls if x not in before)


async def hangup(call: Call, other: Call) -> None:
    await call.hangup()
    await other.wait_state("terminated")


async def test_calls_spread_over_the_nodes_and_each_node_lists_its_own(cluster: Cluster) -> None:
    p = await phones(cluster, *(str(e) for e in range(100, 110)))
    calls = [await talking(cluster, p, str(100 + i), str(105 + i)) for i in range(5)]
    used = {node.name for _, _, node in calls}
    assert used == {"node1", "node2", "node3"}
    for node in cluster.nodes:
        listed = {call["id"] for call in node.api("/v1/calls")}
        mine = {out.call_id for out, _, n in calls if n is node}
        assert listed == mine, (node.name, listed, mine)
    merged = json.loads(await cli("show", "calls", "--json", *nodes_args(cluster)))
    assert sorted((r["node"], r["id"]) for r in merged["rows"]) == \
        sorted((n.name, out.call_id) for out, _, n in calls)
    text = await cli("show", "calls", *nodes_args(cluster))
    assert all(f"== node {n.name}" in text for n in cluster.nodes)
    for out, inc, _ in calls:
        await hangup(out, inc)
    for node in cluster.nodes:  # each node's call records carry its node id: they merge
        records = json.loads(await cli("calls", "--json", "-c", str(DEFAULT_CONFIG_DIR),
                                       "-c", str(node.site)))
        assert {r["node"] for r in records} == {node.name}
        assert {r["call_id"] for r in records} == {o.call_id for o, _, n in calls if n is node}


def nodes_args(c: Cluster) -> list[str]:
    """`show --nodes` over every node's API (the shipped conf.d stands for the local one)."""
    apis = ",".join(f"127.0.0.1:{n.api_port}" for n in c.nodes)
    return ["--nodes", apis, "--token", TOKEN, "-c", str(DEFAULT_CONFIG_DIR)]


async def cli(*args: str) -> str:
    """`mediasrv ARGS` as a process; its stdout."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "mediasrv", *args, stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE)
    out, err = await proc.communicate()
    assert proc.returncode == 0, err.decode()
    return out.decode()


async def test_sigkill_of_a_node_under_load(cluster: Cluster) -> None:
    p = await phones(cluster, *(str(e) for e in range(100, 110)))
    calls = [await talking(cluster, p, str(100 + i), str(105 + i)) for i in range(5)]
    victim = calls[0][2]
    victim.signal(signal.SIGKILL)
    t0 = time.monotonic()
    seen = asyncio.create_task(cli("show", "calls", "--json", *nodes_args(cluster)))
    # the caller whose calls hash to the dead node calls again: the next node takes it
    before = list(p["106"].calls)
    retry = await p["100"].call(cluster.uri("106"))
    assert await retry.wait_final(timeout=10) == 200
    recovered = time.monotonic() - t0
    assert recovered < 10
    new_in = await new_incoming(p["106"], before)
    assert cluster.node_of(new_in.invite) is not victim
    await retry.wait_hearing({NAMES["106"]})
    await asyncio.sleep(0.4)  # a full hearing window after the kill
    for out, inc, node in calls:
        if node is not victim:  # calls on live nodes go on, both ways
            await out.wait_hearing({inc.phone.name})
            await inc.wait_hearing({out.phone.name})
    # within 10 s the dispatcher has the dead node out: new calls no longer wait for it
    await until(lambda: time.monotonic() - t0 > 4, 5, lambda: "")
    t1 = time.monotonic()
    again = await p["100"].call(cluster.uri("107"))
    assert await again.wait_final(timeout=5) == 200
    assert time.monotonic() - t1 < 1.0
    for out, inc, node in calls:
        if node is not victim:
            await hangup(out, inc)
    for call in (retry, again):
        await call.hangup()
    merged = json.loads(await seen)  # the dead node is named, the live ones still listed
    assert [u.split(":")[0] for u in merged["unreachable"]] == ["node 127.0.0.1"]
    assert {r["node"] for r in merged["rows"]} == {n.name for n in cluster.nodes} - {victim.name}
    print(f"first new call after SIGKILL answered in {recovered:.2f} s")


async def test_sigterm_drain_loses_no_call(cluster: Cluster) -> None:
    p = await phones(cluster, *(str(e) for e in range(100, 110)))
    calls = [await talking(cluster, p, str(100 + i), str(105 + i)) for i in range(5)]
    victim = calls[0][2]
    victim.signal(signal.SIGTERM)
    await asyncio.sleep(0.3)
    before = list(p["106"].calls)
    new = await p["100"].call(cluster.uri("106"))      # hashes to the draining node
    assert await new.wait_final(timeout=5) == 200       # its 503 sent the call elsewhere
    new_in = await new_incoming(p["106"], before)
    assert cluster.node_of(new_in.invite) is not victim
    await new.wait_hearing({NAMES["106"]})
    await asyncio.sleep(0.4)
    for out, inc, _node in calls:  # every call, the draining node's too, still talks
        await out.wait_hearing({inc.phone.name})
        await inc.wait_hearing({out.phone.name})
    assert victim.alive
    for out, inc, node in calls:
        if node is victim:
            await hangup(out, inc)
    await until(lambda: not victim.alive, 5, lambda: "the drained node to exit")
    assert victim.proc.returncode == 0
    for out, inc, node in calls:
        if node is not victim:
            await hangup(out, inc)
    await hangup(new, new_in)


async def test_attended_transfer_by_the_caller_through_the_proxy(cluster: Cluster) -> None:
    """A's identity comes from the proxy's P-Asserted-Identity, so A may use #4."""
    p = await phones(cluster, "101", "102", "103")
    a_call, b_in, node = await talking(cluster, p, "101", "102")
    await a_call.send_dtmf("#4")
    await until(lambda: not p["101"].hears(), 3, lambda: "A to hear the prompt, not B")
    await a_call.send_dtmf("103#")
    c_in = await p["103"].next_incoming()
    assert cluster.node_of(c_in.invite) is node  # the consultation leaves from A's node
    await c_in.wait_state("confirmed")            # C answers at once (auto-answer)
    await a_call.wait_hearing({NAMES["103"]})
    await c_in.wait_hearing({NAMES["101"]})
    await a_call.hangup()                        # A completes the transfer by hanging up
    await b_in.wait_hearing({NAMES["103"]})
    await c_in.wait_hearing({NAMES["102"]})
    await hangup(c_in, b_in)


async def test_refer_with_replaces_from_a_phone_through_the_proxy(cluster: Cluster) -> None:
    """A's two calls hash to one node; A's phone joins B and C with REFER + Replaces."""
    p = await phones(cluster, "101", "102", "103")
    to_b, b_in, node_b = await talking(cluster, p, "101", "102")
    assert await to_b.hold() == 200
    to_c, c_in, node_c = await talking(cluster, p, "101", "103")
    assert node_b is node_c
    assert await to_b.refer(cluster.uri("103"), replaces=to_c) == 202
    await b_in.wait_hearing({NAMES["103"]}, timeout=5)
    await c_in.wait_hearing({NAMES["102"]})
    await to_b.wait_state("terminated")
    await to_c.wait_state("terminated")
    await hangup(b_in, c_in)


async def test_invite_with_replaces_is_routed_to_the_node_of_the_dialog(cluster: Cluster
                                                                        ) -> None:
    """D's own calls hash to another node than A's; its INVITE with Replaces naming A's
    dialog still reaches A's node (Kamailio's Call-ID -> node table) and takes A's place."""
    p = await phones(cluster, "101", "102")
    d = await cluster.phone(NAMES["103"], "103", cls=ReplacingPhone)
    d.replaces = []
    d_call, d_in, d_node = await talking(cluster, {**p, "103": d}, "103", "102")
    await hangup(d_call, d_in)
    a_call, b_in, node = await talking(cluster, p, "101", "102")
    assert d_node is not node
    d.replaces = [replaces_of(a_call)]
    new = await d.call(cluster.uri("102"))
    assert await new.wait_final() == 200, cluster.logs()
    await a_call.wait_state("terminated")
    await b_in.wait_hearing({NAMES["103"]})
    await d.wait_hearing({NAMES["102"]})
    [call] = node.api("/v1/calls")   # A's node took D's INVITE and put D in A's place
    assert sorted(leg["number"] for leg in call["legs"]) == ["102", "103"]
    assert d_node.api("/v1/calls") == []
    await hangup(new, b_in)


@pytest.mark.parametrize("refer_on", ["held", "consultation"])
async def test_refer_with_replaces_across_two_nodes(cluster: Cluster, refer_on: str) -> None:
    """A's two calls sit on two nodes: D called A (D's node), A called C (A's node). A's
    REFER on one names the other's dialog: the node that gets it has the transferred party
    dial the Refer-To user with that Replaces through Kamailio, which sends the INVITE to the
    node holding the dialog (its Call-ID -> node table), where it takes A's place. D and C
    then hear each other through both nodes."""
    p = await phones(cluster, "101", "102", "103")
    d_call, a_from_d, node_d = await talking(cluster, p, "103", "101")
    assert await a_from_d.hold() == 200
    a_to_c, c_in, node_c = await talking(cluster, p, "101", "102")
    assert node_d is not node_c
    if refer_on == "held":     # the usual: REFER the held call, Replaces names the new one
        refer, named, transferred, target = a_from_d, a_to_c, d_call, c_in
        refer_to = cluster.uri(target.phone.user)
    else:                      # Refer-To as many phones write it: the named dialog's Contact
        assert await a_to_c.hold() == 200
        refer, named, transferred, target = a_to_c, a_from_d, c_in, d_call
        refer_to = named.remote_target        # sip:mediasrv@<the other node>
    assert await refer.refer(refer_to, replaces=named) == 202
    await refer.wait_notify("SIP/2.0 200")
    await transferred.wait_hearing({target.phone.name}, timeout=5)
    await target.wait_hearing({transferred.phone.name})
    await a_from_d.wait_state("terminated")
    await a_to_c.wait_state("terminated")
    assert p["101"].active_calls() == []
    for node in (node_d, node_c):  # one call on each node, its two legs D's and C's side
        [call] = node.api("/v1/calls")
        assert "101" not in {leg["number"] for leg in call["legs"]}, (node.name, call)
    await hangup(d_call, c_in)


async def test_blind_transfer_through_the_proxy(cluster: Cluster) -> None:
    p = await phones(cluster, "101", "102", "103")
    a_call, b_in, node = await talking(cluster, p, "101", "102")
    await a_call.send_dtmf("#1")
    await asyncio.sleep(0.3)
    await a_call.send_dtmf("103#")
    c_in = await p["103"].next_incoming()
    assert cluster.node_of(c_in.invite) is node   # the transfer target is dialled from there
    await c_in.wait_state("confirmed")
    await b_in.wait_hearing({NAMES["103"]}, timeout=5)
    await c_in.wait_hearing({NAMES["102"]})
    await a_call.wait_state("terminated")          # the transferer left the call
    await hangup(b_in, c_in)


async def test_voicemail_of_an_extension_no_proxy_knows(cluster: Cluster) -> None:
    """104 is registered nowhere: the proxy answers the node 404 (not registered), the
    node's failover takes the caller to 104's voicemail, recorded on that node."""
    p = await phones(cluster, "101")
    call = await p["101"].call(cluster.uri("104"))
    assert await call.wait_final() == 200
    await until(lambda: call.hearing.has_audio(), 3, lambda: "the greeting")
    await asyncio.sleep(4.0)               # greeting (2.5 s), beep, then A's tone is recorded
    await call.hangup()
    def messages() -> list[Path]:
        return [m for n in cluster.nodes for m in (n.site / "voicemail" / "104").glob("*.wav")]
    await until(lambda: len(messages()) == 1, 5, lambda: f"messages: {messages()}")
    pcm, rate = soundfile.read(messages()[0], dtype="int16")
    hearing = audio.Hearing(window=10.0)
    hearing.feed(pcm[-rate // 2:], now=0.0)          # the last half second of the message
    assert len(pcm) > rate // 2 and hearing.tones(now=0.0) == {NAMES["101"]}
    # each node's index names it; merged, they list the one message, on the node holding it
    index = [row for n in cluster.nodes for row in json.loads(await cli(
        "voicemail", "--json", "-c", str(DEFAULT_CONFIG_DIR), "-c", str(n.site)))]
    [row] = index
    assert (row["mailbox"], row["caller"], Path(row["path"])) == ("104", "101", messages()[0])
    assert messages()[0].is_relative_to(next(n.site for n in cluster.nodes
                                             if n.name == row["node"]))


async def test_two_proxies_share_registrations_in_postgresql_and_dialogs_by_dmq(
        tmp_path: Path) -> None:
    """The several-proxies set-up: usrloc of both Kamailios in one PostgreSQL, their Call-ID
    -> node tables replicated with dmq. C registers through proxy 1, A through proxy 2; A
    calls C through proxy 2, and the node sends the call to C through proxy 2 as well (its
    outbound proxy), which finds C's binding, saved by proxy 1, in the shared table. Then D,
    through proxy 1, takes A's place with an INVITE with Replaces: proxy 1 never saw A's call
    but learnt its node from proxy 2 (D's own calls hash to another node)."""
    require_kamailio()
    require_postgres()
    c = Cluster(tmp_path, proxies=2, database="postgres", dmq=True)
    try:
        await c.start()
        callee = await c.phone(NAMES["102"], "102", proxy=0)
        caller = await c.phone(NAMES["101"], "101", proxy=1)
        assert c.postgres is not None
        assert sorted(r[0] for r in c.postgres.query("SELECT username FROM location")) == \
            ["101", "102"]
        call = await caller.call(c.uri("102", proxy=1))
        assert await call.wait_final() == 200, c.logs()
        incoming = await callee.next_incoming()
        via = " ".join(incoming.invite.get_all("Via"))
        assert f"127.0.0.2:{c.proxy_ports[1]};" in via  # proxy 2 looked 102 up
        assert f"127.0.0.2:{c.proxy_ports[0]};" not in via
        await call.wait_hearing({NAMES["102"]})
        await incoming.wait_hearing({NAMES["101"]})
        node = c.node_of(incoming.invite)
        d = await c.phone(NAMES["103"], "103", cls=ReplacingPhone, proxy=0)
        d.replaces = [replaces_of(call)]
        new = await d.call(c.uri("102", proxy=0))
        assert await new.wait_final() == 200, c.logs()
        await call.wait_state("terminated")
        await incoming.wait_hearing({NAMES["103"]})
        await d.wait_hearing({NAMES["102"]})
        [joined] = node.api("/v1/calls")
        assert sorted(leg["number"] for leg in joined["legs"]) == ["102", "103"]
        assert all(n.api("/v1/calls") == [] for n in c.nodes if n is not node)
        await hangup(new, incoming)
    finally:
        await c.stop()
