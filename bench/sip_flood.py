"""Malformed-SIP flood against a real mediasrv during a call: SIP-thread CPU and wrong answers.

How this works: a mediasrv runs as its own process (`python -m mediasrv run`, T1 500 ms as
deployed) on free ports. Two TestPhones (100 and 101, on 127.0.0.1) register and call each
other; each sends its identity tone. A flooder thread on 127.0.0.3 then sends `--rate`
messages a second for `--seconds` over UDP, cycling through the 28 KINDS of malformed SIP
below (the mix a SIP scanner or a fuzzer sends), and a reader counts every answer by kind
(the kind is carried in the Call-ID and the Via branch, so an answer names its request).

`--transport tcp` floods over TCP instead: the flooder keeps `TCP_CONNECTIONS` connections
open from 127.0.0.3 and writes each message (Via `SIP/2.0/TCP`) on the next one in turn;
a connection the server closed (or refused) is reopened, and the reopenings are counted.
`--kinds garbage,huge_header` limits the mix (a garbage or over-size frame flood).

Measured, from /proc: the CPU share of the server's SIP thread (the main thread, where the
asyncio loop, the SIP core and the call layer run) during the flood, and during a quiet
stretch of the same call before it as the reference. Checked: no 2xx answers any request
(every one of them is invalid: it must get a 4xx/5xx or be dropped, RFC 3261 §8.2, §16.3),
and the call survives (both phones still hear each other after the flood).

    .venv/bin/python -m bench.sip_flood --seconds 10 --rate 2000 [--no-ban] [--json]
        [--transport tcp] [--kinds garbage,...]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import re
import secrets
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter, defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from mediasrv.config import DEFAULT_CONFIG_DIR, DEFAULT_PLUGIN_DIR

ROOT = Path(__file__).resolve().parent.parent
FLOOD_HOST = "127.0.0.3"
TICK = os.sysconf("SC_CLK_TCK")

Builder = Callable[[str, int, str], bytes]


def _request(target: str, src: str, tag: str, *, method: str = "OPTIONS",
             via_host: str | None = None, drop: tuple[str, ...] = (),
             replace: dict[str, str] | None = None, extra: str = "", body: str = "",
             line: str | None = None) -> bytes:
    """One request from the flooder; `tag` (flood-KIND-N) goes into the branch and Call-ID."""
    headers = {
        "Via": f"SIP/2.0/UDP {via_host or src};branch=z9hG4bK{tag};rport",
        "Max-Forwards": "70",
        "From": f"<sip:scanner@{src.split(':')[0]}>;tag={tag[-8:]}",
        "To": f"<sip:100@{target}>",
        "Call-ID": tag,
        "CSeq": f"1 {method}",
        "Contact": f"<sip:scanner@{src}>",
        "Content-Length": str(len(body)),
    }
    for name in drop:
        headers.pop(name)
    headers.update(replace or {})
    head = "".join(f"{k}: {v}\r\n" for k, v in headers.items())
    first = line or f"{method} sip:100@{target} SIP/2.0"
    return f"{first}\r\n{head}{extra}\r\n{body}".encode("utf-8", "surrogateescape")


def _kinds() -> dict[str, Builder]:
    r = _request
    big = "x" * 20000
    many = "".join(f"X-Pad-{i}: {i}\r\n" for i in range(600))
    sdp_bad = "v=0\r\no=- 1 1 IN IP4\r\nc=IN IP9 nowhere\r\nm=audio notaport RTP/AVP 0\r\n"
    return {
        "via_bad_host": lambda t, s, g: r(t, s, g, via_host="bad_host!!:5060"),
        "via_bad_host_register": lambda t, s, g: r(t, s, g, method="REGISTER",
                                                   via_host="-nohost-.:5060"),
        "via_bad_host_invite": lambda t, s, g: r(t, s, g, method="INVITE", via_host="a..b:5060"),
        "via_empty_host": lambda t, s, g: r(t, s, g, via_host=":5060"),
        "via_bad_port": lambda t, s, g: r(t, s, g, via_host="127.0.0.3:99999"),
        "via_bad_proto": lambda t, s, g: r(t, s, g, replace={
            "Via": f"SIP/9.9/UDP {s};branch=z9hG4bK{g}"}),
        "missing_via": lambda t, s, g: r(t, s, g, drop=("Via",)),
        "missing_from": lambda t, s, g: r(t, s, g, drop=("From",)),
        "missing_to": lambda t, s, g: r(t, s, g, drop=("To",)),
        "missing_call_id": lambda t, s, g: r(t, s, g, drop=("Call-ID",),
                                             extra=f"X-Flood: {g}\r\n"),
        "missing_cseq": lambda t, s, g: r(t, s, g, drop=("CSeq",)),
        "bad_cseq_number": lambda t, s, g: r(t, s, g, replace={"CSeq": "one OPTIONS"}),
        "cseq_method_mismatch": lambda t, s, g: r(t, s, g, replace={"CSeq": "1 INVITE"}),
        "bad_max_forwards": lambda t, s, g: r(t, s, g, replace={"Max-Forwards": "lots"}),
        "bad_content_length": lambda t, s, g: r(t, s, g, replace={"Content-Length": "-5"}),
        "short_body": lambda t, s, g: r(t, s, g, replace={"Content-Length": "400"}),
        "huge_header": lambda t, s, g: r(t, s, g, extra=f"Subject: {big}\r\n"),
        "many_headers": lambda t, s, g: r(t, s, g, extra=many),
        "header_no_colon": lambda t, s, g: r(t, s, g, extra="This line has no colon\r\n"),
        "nul_in_header": lambda t, s, g: r(t, s, g, extra="User-Agent: sip\x00vicious\r\n"),
        "bad_utf8": lambda t, s, g: r(t, s, g, extra="User-Agent: \udcff\udcfe\r\n"),
        "bad_request_line": lambda t, s, g: r(t, s, g, line="OPTIONS  SIP/2.0 extra"),
        "bad_sip_version": lambda t, s, g: r(t, s, g, line=f"OPTIONS sip:100@{t} SIP/3.0"),
        "bad_request_uri": lambda t, s, g: r(t, s, g, line="OPTIONS sip:@@:: SIP/2.0"),
        "bad_from_uri": lambda t, s, g: r(t, s, g, replace={"From": "<sip:>;tag=x"}),
        "bad_contact": lambda t, s, g: r(t, s, g, method="REGISTER",
                                         replace={"Contact": "<sip:a@;;;>;expires=x"}),
        "bad_sdp_invite": lambda t, s, g: r(t, s, g, method="INVITE", body=sdp_bad,
                                            replace={"Content-Type": "application/sdp"}),
        "garbage": lambda t, s, g: f"\x16\x03\x01 {g} ".encode() + secrets.token_bytes(120),
    }


KINDS = _kinds()
_TAG_RE = re.compile(rb"flood-([a-z0-9_]+)-\d+")
_STATUS_RE = re.compile(rb"^SIP/2\.0 (\d{3}) ")


@dataclass
class FloodResult:
    sent: int = 0
    seconds: float = 0.0
    answers: dict[str, Counter[int]] = field(default_factory=lambda: defaultdict(Counter))
    unmatched: Counter[int] = field(default_factory=Counter)
    reopened: int = 0  # TCP: connections opened (the first ones included)

    def bad_2xx(self) -> dict[str, int]:
        return {kind: sum(n for s, n in c.items() if 200 <= s < 300)
                for kind, c in self.answers.items()
                if any(200 <= s < 300 for s in c)}


def flood(target: tuple[str, int], rate: int, seconds: float,
          host: str = FLOOD_HOST) -> FloodResult:
    """Send `rate` malformed messages a second for `seconds`; count the answers by kind."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind((host, 0))
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
    src = f"{host}:{sock.getsockname()[1]}"
    dest = f"{target[0]}:{target[1]}"
    result = FloodResult()
    stop = threading.Event()

    def read() -> None:
        sock.settimeout(0.2)
        while not stop.is_set():
            try:
                data = sock.recv(65535)
            except (TimeoutError, OSError):
                continue
            _count(result, data)

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    names = list(KINDS)
    batch = max(1, rate // 100)
    t0 = time.monotonic()
    n = 0
    while (now := time.monotonic()) - t0 < seconds:
        due = int((now - t0) * rate)
        while n < due:
            kind = names[n % len(names)]
            try:
                sock.sendto(KINDS[kind](dest, src, f"flood-{kind}-{n}"), target)
            except OSError:
                pass
            n += 1
        time.sleep(batch / rate / 2)
    result.sent, result.seconds = n, time.monotonic() - t0
    time.sleep(1.0)  # answers still in flight
    stop.set()
    reader.join()
    sock.close()
    return result


TCP_CONNECTIONS = 8
# On a stream `short_body` is no error: its Content-Length takes the next message's bytes as
# its body, and the request so framed is valid (a 200 to it is right), so the TCP mix leaves
# it out.
TCP_KINDS = [k for k in KINDS if k != "short_body"]


class _TcpFlooder:
    """`TCP_CONNECTIONS` non-blocking connections to `target`, reopened when closed."""

    def __init__(self, target: tuple[str, int], host: str, result: FloodResult) -> None:
        self.target, self.host, self.result = target, host, result
        self.socks: list[socket.socket | None] = [None] * TCP_CONNECTIONS
        self.buffers: list[bytes] = [b""] * TCP_CONNECTIONS
        self.reopened = 0

    def _open(self, i: int) -> socket.socket | None:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.bind((self.host, 0))
        sock.settimeout(1.0)
        try:
            sock.connect(self.target)
        except OSError:
            sock.close()
            return None
        sock.setblocking(False)
        self.socks[i], self.buffers[i] = sock, b""
        self.reopened += 1
        return sock

    def _drop(self, i: int) -> None:
        sock = self.socks[i]
        if sock is not None:
            sock.close()
        self.socks[i] = None

    def send(self, n: int, data: bytes) -> None:
        i = n % TCP_CONNECTIONS
        sock = self.socks[i] or self._open(i)
        if sock is None:
            return
        self.read(i)
        try:
            sock.send(data)
        except OSError:  # closed by the server (a framing error, a ban): reopen next time
            self._drop(i)

    def read(self, i: int) -> None:
        sock = self.socks[i]
        while sock is not None:
            try:
                data = sock.recv(65535)
            except BlockingIOError:
                return
            except OSError:
                data = b""
            if not data:
                self._drop(i)
                return
            self.buffers[i] += data
            *answers, self.buffers[i] = self.buffers[i].split(b"\r\n\r\n")
            for answer in answers:
                _count(self.result, answer)

    def close(self) -> None:
        for i in range(TCP_CONNECTIONS):
            self.read(i)
            self._drop(i)


def _count(result: FloodResult, data: bytes) -> None:
    status = _STATUS_RE.match(data.lstrip(b"\r\n"))
    if status is None:
        return
    tag = _TAG_RE.search(data)
    code = int(status.group(1))
    if tag:
        result.answers[tag.group(1).decode()][code] += 1
    else:
        result.unmatched[code] += 1


def flood_tcp(target: tuple[str, int], rate: int, seconds: float, kinds: list[str],
              host: str = FLOOD_HOST) -> FloodResult:
    """`flood()` over TCP connections; `result.reopened` counts the connections opened."""
    dest = f"{target[0]}:{target[1]}"
    result = FloodResult()
    flooder = _TcpFlooder(target, host, result)
    batch = max(1, rate // 100)
    t0 = time.monotonic()
    n = 0
    while (now := time.monotonic()) - t0 < seconds:
        due = int((now - t0) * rate)
        while n < due:
            kind = kinds[n % len(kinds)]
            src = f"{host}:{40000 + n % TCP_CONNECTIONS}"
            data = KINDS[kind](dest, src, f"flood-{kind}-{n}").replace(b"/UDP ", b"/TCP ")
            flooder.send(n, data)
            n += 1
        time.sleep(batch / rate / 2)
    result.sent, result.seconds = n, time.monotonic() - t0
    time.sleep(1.0)
    flooder.close()
    result.reopened = flooder.reopened
    return result


# ---------------------------------------------------------------------------- the server


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as u:
        u.bind(("127.0.0.1", 0))
        return u.getsockname()[1]


def thread_cpu(pid: int, tid: int | None = None) -> float:
    """CPU seconds (user + system) of one thread of `pid` (the main thread by default)."""
    fields = Path(f"/proc/{pid}/task/{tid or pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK


class ServerProcess:
    """`python -m mediasrv run` on free ports with a site directory in a temp dir."""

    def __init__(self, tmp: Path, extra: str = "", listen_extra: tuple[str, ...] = ()) -> None:
        self.port = free_port()
        self.tmp = tmp
        site = tmp / "site"
        site.mkdir(exist_ok=True)
        rtp = random.randrange(20000, 32400, 200)  # below the ephemeral ports the SIP port is from
        listen = [f"udp:127.0.0.1:{self.port}", f"tcp:127.0.0.1:{self.port}", *listen_extra]
        (site / "99-flood.toml").write_text(
            f'[sip]\nlisten = {json.dumps(listen)}\n'
            f'[rtp]\nports = [{rtp}, {rtp + 199}]\n[storage]\npath = "{tmp}/db.sqlite3"\n'
            f'[api]\nlisten = ""\n' + extra)
        self.log = open(tmp / "server.log", "w+b")  # noqa: SIM115 (closed in stop())
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "mediasrv", "run", "-c", str(DEFAULT_CONFIG_DIR), "-c",
             str(site), "--plugins", str(DEFAULT_PLUGIN_DIR), "--log-level", "WARNING"],
            cwd=ROOT, stdout=self.log, stderr=subprocess.STDOUT)

    def stop(self) -> str:
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.log.seek(0)
        text = self.log.read().decode(errors="replace")
        self.log.close()
        return text


async def _register(phone, timeout: float = 15.0) -> None:  # noqa: ANN001 (a TestPhone)
    deadline = time.monotonic() + timeout
    while True:
        try:
            resp = await phone.register()
            if resp.status == 200:
                return
        except Exception:  # the server is still starting
            if time.monotonic() > deadline:
                raise
        await asyncio.sleep(0.3)


async def run(seconds: float, rate: int, quiet: float = 3.0, extra: str = "",
              transport: str = "udp", kinds: list[str] | None = None) -> dict:
    """Quiet call stretch, then the flood (over `transport`, of `kinds`: all by default);
    returns the figures."""
    sys.path.insert(0, str(ROOT))
    from tests.peers.phone import TestPhone

    with tempfile.TemporaryDirectory(prefix="flood-") as tmp:
        server = ServerProcess(Path(tmp), extra)
        addr = ("127.0.0.1", server.port)
        a = await TestPhone("A", "100", "demo100", server=addr).start()
        b = await TestPhone("B", "101", "demo101", server=addr).start()
        try:
            await _register(a)
            await _register(b)
            call = await a.call(f"sip:101@127.0.0.1:{server.port}")
            assert await call.wait_final() == 200, "the call was not answered"
            await a.wait_hearing({"B"}, 5)
            await b.wait_hearing({"A"}, 5)
            pid = server.proc.pid
            c0, t0 = thread_cpu(pid), time.monotonic()
            await asyncio.sleep(quiet)
            quiet_share = (thread_cpu(pid) - c0) / (time.monotonic() - t0)
            c1, t1 = thread_cpu(pid), time.monotonic()
            if transport == "tcp":
                result = await asyncio.to_thread(flood_tcp, addr, rate, seconds,
                                                 kinds or TCP_KINDS)
            else:
                result = await asyncio.to_thread(flood, addr, rate, seconds)
            flood_share = (thread_cpu(pid) - c1) / (time.monotonic() - t1)
            survived = bool(a.active_calls() and b.active_calls())
            if survived:
                await a.wait_hearing({"B"}, 5)
                await b.wait_hearing({"A"}, 5)
            await call.hangup()
        finally:
            await a.close()
            await b.close()
            log = server.stop()
    return {
        "rate": rate, "seconds": round(result.seconds, 2), "sent": result.sent,
        "transport": transport,
        "kinds": len(kinds or (TCP_KINDS if transport == "tcp" else KINDS)),
        "connections_opened": result.reopened, "sip_thread_cpu_quiet": round(quiet_share, 3),
        "sip_thread_cpu_flood": round(flood_share, 3), "call_survived": survived,
        "answered_2xx": result.bad_2xx(),
        "answers": {k: dict(sorted(v.items())) for k, v in sorted(result.answers.items())},
        "unmatched": dict(result.unmatched),
        "ban_lines": [ln for ln in log.splitlines() if "banned" in ln][:5],
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--seconds", type=float, default=10.0)
    p.add_argument("--rate", type=int, default=2000)
    p.add_argument("--json", action="store_true")
    p.add_argument("--no-ban", action="store_true",
                   help="turn bans and the rate limit off: every datagram is pre-parsed")
    p.add_argument("--transport", choices=("udp", "tcp"), default="udp")
    p.add_argument("--kinds", default="", help="comma-separated KINDS (TCP only; default all)")
    args = p.parse_args()
    extra = "[security]\nban_threshold = 0\nrate_limit = 0\n" if args.no_ban else ""
    kinds = [k for k in args.kinds.split(",") if k] or None
    unknown = set(kinds or ()) - set(KINDS)
    if unknown:
        p.error(f"unknown kinds {sorted(unknown)}; known: {', '.join(KINDS)}")
    figures = asyncio.run(run(args.seconds, args.rate, extra=extra, transport=args.transport,
                              kinds=kinds))
    if args.json:
        print(json.dumps(figures, indent=1))
        return
    print(f"{figures['sent']} messages ({figures['kinds']} kinds) over {figures['transport']} "
          f"in {figures['seconds']} s ({figures['connections_opened']} connections opened) "
          f"during a call; SIP thread CPU: {figures['sip_thread_cpu_flood']:.1%} of a core "
          f"(quiet call: {figures['sip_thread_cpu_quiet']:.1%}); call survived: "
          f"{figures['call_survived']}")
    print(f"2xx to invalid requests: {sum(figures['answered_2xx'].values())} "
          f"{figures['answered_2xx']}")
    for kind, answers in figures["answers"].items():
        print(f"  {kind:24} {answers}")
    for line in figures["ban_lines"]:
        print(f"  log: {line}")


if __name__ == "__main__":
    main()
