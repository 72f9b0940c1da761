"""Server CPU per call of the authenticated call flow, without sockets or a clock race (issue 13).

How this works: a real mediasrv (`Server`: endpoint, B2BUA, gatekeeper, registrar, SQLite
call records, media engine, logging) runs on an event loop of this thread, but its UDP
listeners are cut out: the datagrams it sends are captured, and two scripted peers written
here answer them and feed theirs to `SipDriver.on_data`, as the socket would. The flow is
`bench/ser.py`'s, message for message as SIPp sends it: 102 registers with digest; 101 calls
102: INVITE -> 401 -> ACK -> INVITE with credentials -> (100, 180, 200 relayed) -> ACK, and
later BYE -> 200. `--live` calls are kept up at once (the oldest is hung up when a new one
is set up), so the server's tables hold what they hold under load.

Only the server's work is timed (`time.thread_time` around each `on_data` and each turn of
the loop); the peers' message building is not. There is no retransmission, no wall-clock
race and no load generator on the cores, so the figure moves with the code, not with the
machine's load: it is the "ms of CPU per call" of `bench/ser.py` without the noise. With
`--profile FILE` the timed parts run under cProfile (stats for `pstats`, the split by part
with `--split`).

    .venv/bin/python -m bench.sig_cpu --calls 2000 --live 300 [--profile /tmp/sig.prof --split]
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import gc
import logging
import re
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from mediasrv.config import DEFAULT_CONFIG_DIR, DEFAULT_PLUGIN_DIR, load_config
from mediasrv.server import Server
from mediasrv.sip.auth import build_authorization
from mediasrv.sip.message import Request, Response, parse_message
from mediasrv.stalls import settle_collector
from tests.integration.conftest import site_config

Address = tuple[str, int]
Message = Request | Response
UAC = ("127.0.0.1", 47001)
UAS = ("127.0.0.1", 47002)
SDP = ("v=0\r\no=sipp 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"
       "m=audio {port} RTP/AVP 0 101\r\na=rtpmap:0 PCMU/8000\r\n"
       "a=rtpmap:101 telephone-event/8000\r\na=sendrecv\r\n")
_TAG_RE = re.compile(r";tag=([^;>\s]+)")


class Bench:
    """A server with its sockets cut out, and the peers' side of each exchange."""

    def __init__(self, profile: cProfile.Profile | None) -> None:
        site = site_config(Path(tempfile.mkdtemp(prefix="sig-cpu-")))
        (site / "99-zz-bench.toml").write_text(
            '[sip]\ntimer_t1 = 0.5\n[rtp]\nports = [61000, 65534]\ntimeout = 0\n'
            '[security]\nrate_limit = 0\n')
        self.server = Server(load_config([DEFAULT_CONFIG_DIR, site], DEFAULT_PLUGIN_DIR))
        self.loop = asyncio.new_event_loop()
        self.loop.run_until_complete(self.server.start())
        self.server.b2bua.gatekeeper.digest.algorithms = ("MD5",)
        # Housekeeping paced by the clock, not by calls (the metrics task measures the loop's
        # lag once a second): here calls come faster or slower than in real time,
        # so it would be charged to them wrongly. Its real cost is in bench/ser.py's figure.
        assert self.server.metrics is not None
        self.server.metrics.stop()
        self.driver = self.server.driver
        self.sent: list[tuple[bytes, Address]] = []
        for lst in self.driver.udp:
            lst.send = lambda data, dest: self.sent.append((data, dest))  # type: ignore[method-assign]
        lst = self.server.config.sip.listen[0]
        self.target = f"{lst.host}:{lst.port}"
        self.local = (lst.host, lst.port)
        self.cpu = 0.0
        self.profile = profile
        self.branches = 0

    # ------------------------------------------------------------------ timed: the server

    def _timed(self, fn: Callable[[], object]) -> None:
        t0 = time.thread_time()
        if self.profile is not None:
            self.profile.enable()
        fn()
        if self.profile is not None:
            self.profile.disable()
        self.cpu += time.thread_time() - t0

    def deliver(self, text: str, source: Address) -> list[tuple[Message, Address]]:
        """Hand one datagram to the server, turn its loop once; what it sent back."""
        data = text.encode()
        self._timed(lambda: self.driver.on_data(data, source, "udp", None, self.local))
        self.spin()
        out, self.sent = self.sent, []
        return [(parse_message(d), dest) for d, dest in out]

    def spin(self) -> None:
        """One turn of the server's loop (callbacks it scheduled, due timers)."""
        def turn() -> None:
            self.loop.call_soon(self.loop.stop)
            self.loop.run_forever()
        self._timed(turn)

    # ------------------------------------------------------------------ the peers

    def branch(self) -> str:
        self.branches += 1
        return f"z9hG4bK-bench-{self.branches}"

    def register(self, user: str, password: str, contact: Address) -> None:
        call_id = f"reg-{user}@127.0.0.1"
        def request(cseq: int, auth: str) -> str:
            return (f"REGISTER sip:{self.target} SIP/2.0\r\n"
                    f"Via: SIP/2.0/UDP {contact[0]}:{contact[1]};branch={self.branch()}\r\n"
                    f"From: <sip:{user}@127.0.0.1>;tag=reg{user}\r\n"
                    f"To: <sip:{user}@127.0.0.1>\r\nCall-ID: {call_id}\r\nCSeq: {cseq} REGISTER\r\n"
                    f"Contact: <sip:{user}@{contact[0]}:{contact[1]}>\r\n{auth}Expires: 3600\r\n"
                    "Max-Forwards: 70\r\nContent-Length: 0\r\n\r\n")
        challenge = _final(self.deliver(request(1, ""), contact))
        auth = build_authorization(challenge.headers.get("WWW-Authenticate") or "", "REGISTER",
                                   f"sip:{self.target}", user, password)
        assert _final(self.deliver(request(2, f"Authorization: {auth}\r\n"), contact)).status == 200

    def set_up(self, n: int) -> dict[str, str]:
        """Call n from 101 to 102, up to the caller's ACK of the 200."""
        call_id, ftag = f"{n}-bench@127.0.0.1", f"bench{n}"
        uri = f"sip:102@{self.target}"
        head = (f"From: <sip:101@127.0.0.1>;tag={ftag}\r\nTo: <{uri}>\r\nCall-ID: {call_id}\r\n")
        sdp = SDP.format(port=6000 + 2 * (n % 1000))
        def invite(cseq: int, branch: str, auth: str) -> str:
            return (f"INVITE {uri} SIP/2.0\r\n"
                    f"Via: SIP/2.0/UDP 127.0.0.1:{UAC[1]};branch={branch}\r\n{head}"
                    f"CSeq: {cseq} INVITE\r\nContact: <sip:101@127.0.0.1:{UAC[1]}>\r\n{auth}"
                    "Max-Forwards: 70\r\nUser-Agent: SIPp uac_invite_auth_bench\r\n"
                    f"Content-Type: application/sdp\r\nContent-Length: {len(sdp)}\r\n\r\n{sdp}")
        b1 = self.branch()
        challenge = _final(self.deliver(invite(1, b1, ""), UAC))
        assert challenge.status == 401, challenge.status
        self.deliver(f"ACK {uri} SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:{UAC[1]};branch={b1}\r\n"
                     f"From: <sip:101@127.0.0.1>;tag={ftag}\r\n"
                     f"To: {challenge.headers.get('To')}\r\nCall-ID: {call_id}\r\nCSeq: 1 ACK\r\n"
                     "Max-Forwards: 70\r\nContent-Length: 0\r\n\r\n", UAC)
        auth = build_authorization(challenge.headers.get("WWW-Authenticate") or "", "INVITE",
                                   uri, "101", "demo101")
        out = self.deliver(invite(2, self.branch(), f"Authorization: {auth}\r\n"), UAC)
        inv = next(m for m, dest in out if dest == UAS and getattr(m, "method", "") == "INVITE")
        # the callee: 180, then 200 with SDP
        ttag = f"uas{n}"
        copied = "".join(f"{name}: {value}\r\n" for name, value in inv.headers.items()
                         if name in ("Via", "From", "Call-ID", "CSeq", "Record-Route"))
        to = f"To: {inv.headers.get('To')};tag={ttag}\r\n"
        contact = f"Contact: <sip:127.0.0.1:{UAS[1]};transport=UDP>\r\n"
        self.deliver(f"SIP/2.0 180 Ringing\r\n{copied}{to}{contact}Content-Length: 0\r\n\r\n", UAS)
        answer = SDP.format(port=16000 + 2 * (n % 1000))
        out = self.deliver(f"SIP/2.0 200 OK\r\n{copied}{to}{contact}"
                           "Content-Type: application/sdp\r\n"
                           f"Content-Length: {len(answer)}\r\n\r\n{answer}", UAS)
        ok = next(m for m, dest in out if dest == UAC and isinstance(m, Response)
                  and m.status == 200)
        to_caller = ok.headers.get("To") or ""
        contact_uri = re.search(r"<([^>]+)>", ok.headers.get("Contact") or "")
        remote = contact_uri.group(1) if contact_uri else uri
        self.deliver(f"ACK {remote} SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:{UAC[1]};"
                     f"branch={self.branch()}\r\nFrom: <sip:101@127.0.0.1>;tag={ftag}\r\n"
                     f"To: {to_caller}\r\nCall-ID: {call_id}\r\nCSeq: 2 ACK\r\n"
                     "Max-Forwards: 70\r\nContent-Length: 0\r\n\r\n", UAC)
        return {"call_id": call_id, "ftag": ftag, "to": to_caller, "remote": remote}

    def hang_up(self, call: dict[str, str]) -> None:
        """The caller's BYE; the callee answers the server's BYE with 200."""
        out = self.deliver(f"BYE {call['remote']} SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:{UAC[1]};"
                           f"branch={self.branch()}\r\nFrom: <sip:101@127.0.0.1>;tag={call['ftag']}"
                           f"\r\nTo: {call['to']}\r\nCall-ID: {call['call_id']}\r\nCSeq: 3 BYE\r\n"
                           "Max-Forwards: 70\r\nContent-Length: 0\r\n\r\n", UAC)
        bye = next(m for m, dest in out if dest == UAS and getattr(m, "method", "") == "BYE")
        copied = "".join(f"{name}: {value}\r\n" for name, value in bye.headers.items()
                         if name in ("Via", "From", "To", "Call-ID", "CSeq"))
        self.deliver(f"SIP/2.0 200 OK\r\n{copied}Content-Length: 0\r\n\r\n", UAS)

    def close(self) -> None:
        self.loop.run_until_complete(self.server.stop())
        self.loop.close()


def _final(out: list[tuple[Message, Address]]) -> Response:
    return next(m for m, _dest in reversed(out) if isinstance(m, Response) and m.status >= 200)


def run(calls: int, live: int, profile: cProfile.Profile | None = None) -> tuple[float, int]:
    """Server CPU seconds for `calls` calls (after `live` warm-up calls), and the number of
    garbage collections in them. The collector runs as deployed, even under a benchmark
    runner that turns it off (pytest-benchmark's --benchmark-disable-gc)."""
    collecting, thresholds = gc.isenabled(), gc.get_threshold()
    gc.enable()
    bench = Bench(profile=None)
    try:
        bench.register("102", "demo102", UAS)
        settle_collector()
        up = [bench.set_up(n) for n in range(live)]
        bench.cpu, bench.profile = 0.0, profile
        collections = sum(s["collections"] for s in gc.get_stats())
        for n in range(live, live + calls):
            up.append(bench.set_up(n))
            bench.hang_up(up.pop(0))
        collections = sum(s["collections"] for s in gc.get_stats()) - collections
        return bench.cpu, collections
    finally:
        gc.unfreeze()
        gc.set_threshold(*thresholds)
        bench.close()
        if not collecting:
            gc.disable()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=2000)
    parser.add_argument("--live", type=int, default=300, help="calls kept up at once")
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--profile", help="cProfile the server's part into FILE")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    for _ in range(args.rounds):
        profile = cProfile.Profile() if args.profile else None
        cpu, collections = run(args.calls, args.live, profile)
        print(f"{args.calls} calls ({args.live} up at once): server CPU {cpu:.2f} s = "
              f"{cpu * 1000 / args.calls:.3f} ms/call, {collections} GCs", flush=True)
        if profile is not None:
            profile.dump_stats(args.profile)


if __name__ == "__main__":
    main()
