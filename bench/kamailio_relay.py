"""Relayed RTP calls through Kamailio and 1, 2 or 3 mediasrv nodes (issue 14).

How this works: a `tests.integration.cluster.Cluster` starts (Kamailio + N nodes on loopback,
the shipped deploy/kamailio/kamailio.cfg; the nodes share ports 20000-31999, below the
ephemeral range). A SIPp UAS registers to Kamailio as 102 and answers every call; SIPp UACs
call 102 as extensions 100, 101, 103...109 in turn, in batches of `step` calls, and hold them
open. Kamailio dispatches each call to a node (hash over the caller), the node calls 102 back
through Kamailio, and the node relays the media: each call is two legs, two engine streams.

The media is our load generator's (bench/loadgen: sendmmsg/recvmmsg in C), not SIPp's (the
Debian SIPp has no RTP streaming): the scenarios are SIPp's bench scenarios with the SDP port
replaced by the generator's two sockets (callers' side: socket 0, callee's side: socket 1),
so every node sends its legs' RTP there. Once a batch is answered, the nodes' APIs give every
leg's media port (`/v1/channels`) and its remote (`/v1/calls`); the generator then sends
50 packets/s into every leg (2 flows per call, each forwarded by the node to the other leg)
for `seconds` and counts what comes back. Between batches no RTP flows.

A step passes when the loss is at most 0.1 %; the calls grow by `step` until one fails (or
the ports run out). Printed per step: calls, loss, one-way delay p99 through the node, and
the nodes' CPU (all their threads: loop and media) per second, from
which `calls per node core` = calls / (node CPU s per wall s). The figures that matter are
the largest passing step (the relayed calls of N nodes, on this machine) and calls per node
core (the cost of relaying, which should not grow with N). On a 2-core box the load
generator, Kamailio and the nodes share the two cores, so more nodes cannot carry more calls
than the cores allow: the ratio to 1 node shows what spreading costs, not a speed-up.
"""

from __future__ import annotations

import asyncio
import os
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import loadgen  # noqa: E402
from engine_load import voice_frame  # noqa: E402

from tests.integration.cluster import Cluster  # noqa: E402
from tests.peers.sipp import SCENARIOS, Sipp, free_port  # noqa: E402

CALLERS = [str(e) for e in range(100, 110) if e != 102]
PORTS = 12000               # 20000-31999 shared by the nodes: below 32768 (ephemeral)
MAX_LOSS = 0.001
SETUP_RATE = 150            # calls/s while a batch is set up (well below the calls/s limit)
HOLD_MS = 3_600_000         # the UACs hold their calls; they are killed at the end
TICK = os.sysconf("SC_CLK_TCK")


@dataclass
class Step:
    nodes: int
    calls: int
    loss: float
    p99_us: float
    node_cpu: float          # CPU seconds of all nodes per wall second, while relaying
    per_node: list[int]      # calls on each node

    @property
    def ok(self) -> bool:
        return self.loss <= MAX_LOSS

    @property
    def per_core(self) -> float:
        """Calls relayed per core-second of node CPU."""
        return self.calls / max(self.node_cpu, 1e-9)

    def line(self) -> str:
        return (f"  {self.nodes} node(s), {self.calls:5d} calls {self.per_node}: loss "
                f"{self.loss:.4%}, delay p99 {self.p99_us:.0f} us, node CPU "
                f"{self.node_cpu:.2f} cores, {self.per_core:.0f} calls per node core")


def scenario(workdir: Path, name: str) -> Path:
    """A copy of a bench scenario whose SDP names the generator's port `[lg_port]`."""
    text = (SCENARIOS / f"{name}.xml").read_text()
    assert "m=audio [media_port]" in text
    path = workdir / f"{name}_lg.xml"
    path.write_text(text.replace("m=audio [media_port]", "m=audio [lg_port]"))
    return path


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of process `pid` (all its threads)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK


class Relay:
    """One cluster of `nodes` nodes carrying more and more relayed calls."""

    def __init__(self, cluster: Cluster, workdir: Path, max_calls: int) -> None:
        self.cluster, self.workdir = cluster, workdir
        self.lg = loadgen.build().LoadGen(2, 2 * max_calls)
        self.lg.set_payload(voice_frame())
        self.proxy = f"{cluster.proxy[0]}:{cluster.proxy[1]}"
        self.uacs: list[Sipp] = []
        self.uas: Sipp | None = None
        self.flows: set[int] = set()        # node media ports already fed

    async def start_callee(self, max_calls: int) -> None:
        reg = Sipp("register_auth", self.proxy, users=[("102", "demo102")])
        reg.run_sync().check()
        self.uas = Sipp(scenario(self.workdir, "uas_bench"), port=reg.port, calls=max_calls,
                        timeout=3600, keys={"lg_port": str(self.lg.port(1))})
        await self.uas.start()

    async def add_calls(self, count: int, total: int) -> None:
        """`count` more calls, held; returns when `total` calls are answered on the nodes."""
        uac = Sipp(scenario(self.workdir, "uac_auth_bench"), self.proxy, calls=count,
                   rate=SETUP_RATE, limit=count, duration=HOLD_MS, service="102",
                   users=[(u, f"demo{u}") for u in CALLERS], timeout=3600,
                   keys={"lg_port": str(self.lg.port(0))})
        uac.media_port = free_port(even=True)   # every UAC binds one, unused
        await uac.start()
        self.uacs.append(uac)
        deadline = time.monotonic() + count / SETUP_RATE + 30
        while sum(self.answered()) < total:
            if time.monotonic() > deadline:
                raise RuntimeError(f"only {sum(self.answered())} of {total} calls answered\n"
                                   + self.cluster.logs())
            await asyncio.sleep(0.5)

    def answered(self) -> list[int]:
        """Calls with both legs answered, per node."""
        counts = []
        for node in self.cluster.nodes:
            calls = node.api("/v1/calls")
            assert isinstance(calls, list)
            counts.append(sum(1 for c in calls if len(c["legs"]) == 2
                              and all(leg["state"] == "answered" for leg in c["legs"])))
        return counts

    def feed_new_legs(self) -> None:
        """A flow into every leg not fed yet, from the socket its SDP names."""
        ours = {self.lg.port(0): 0, self.lg.port(1): 1}
        for node in self.cluster.nodes:
            ports = {ch["leg"]: ch["local_port"] for ch in node.api("/v1/channels")}
            for call in node.api("/v1/calls"):
                for leg in call["legs"]:
                    port = ports.get(leg["id"])
                    remote = int(str(leg["remote"]).rsplit(":", 1)[1])
                    if port is not None and port not in self.flows and remote in ours:
                        self.lg.add_flow(ours[remote], port)
                        self.flows.add(port)

    def measure(self, seconds: float, calls: int) -> Step:
        self.feed_new_legs()
        pids = [n.proc.pid for n in self.cluster.nodes if n.proc is not None]
        sent0, received0 = self.lg.sent, self.lg.received
        self.lg.reset_delays()
        cpu0, t0 = sum(cpu_seconds(p) for p in pids), time.monotonic()
        self.lg.run(seconds, slots=10)
        cpu1, t1 = sum(cpu_seconds(p) for p in pids), time.monotonic()
        sent, received = self.lg.sent - sent0, self.lg.received - received0
        return Step(len(self.cluster.nodes), calls, 1 - received / max(sent, 1),
                    self.lg.delay_percentile_us(0.99), (cpu1 - cpu0) / (t1 - t0),
                    self.answered())

    def stop(self) -> None:
        for sipp in [*self.uacs, *([self.uas] if self.uas else [])]:
            sipp.stop()
            sipp.cleanup()


async def sweep(nodes: int, step: int, seconds: float, limit: int) -> list[Step]:
    """Calls in batches of `step` until a step loses more than 0.1 % (or `limit` calls)."""
    workdir = Path(tempfile.mkdtemp(prefix=f"kamrelay{nodes}-"))
    cluster = Cluster(workdir, nodes_count=nodes, fr_timer_ms=2000, rtp_span=PORTS // nodes)
    max_calls = min(limit, PORTS // 4)    # two streams of two ports each per call
    await cluster.start()
    relay = Relay(cluster, workdir, max_calls)
    steps: list[Step] = []
    try:
        await relay.start_callee(max_calls)
        total = 0
        while total + step <= max_calls:
            total += step
            await relay.add_calls(step, total)
            steps.append(relay.measure(seconds, total))
            print(steps[-1].line(), flush=True)
            if not steps[-1].ok:
                break
    finally:
        relay.stop()
        await cluster.stop()
    return steps


def best(steps: list[Step]) -> int:
    """The calls of the largest passing step (0: none passed)."""
    return max((s.calls for s in steps if s.ok), default=0)
