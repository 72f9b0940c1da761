"""Signalling-thread CPU of the engine commands of one call (issue 13), without SIP.

How this works: a started one-thread `MediaPool` gets, per call, the commands the B2BUA sends
it in `bench/sig_cpu.py`'s authenticated call flow, in that order (counted there by wrapping
`mediasrv.media.engine._call`): admission, open the caller's stream (with its DTMF mode), its
remote, open the callee's stream, its port for the offer, DTMF held back on both, the
callee's remote, the caller's port for the answer, the bridge; at hang-up, silence to one
side, then the close of both (which returns their final statistics). `--live` calls are
kept up; calls start at `--rate` per second (the pace matters: a closed stream's ports rest
before they are reused, engine_ports.pyx) and each command's thread CPU time is summed by
name.

    .venv/bin/python -m bench.stream_churn [--calls 3000] [--live 300] [--rate 600]
        [--ports MIN MAX] [--split]
"""

from __future__ import annotations

import argparse
import asyncio
import time
from collections import Counter
from collections.abc import Callable

from mediasrv.media.pool import MediaPool

PORTS = (61000, 65534)   # bench/sig_cpu.py's, above the test servers' windows


class Churn:
    def __init__(self, pool: MediaPool) -> None:
        self.pool = pool
        self.cpu: Counter[str] = Counter()
        self.up: list[tuple[int, int]] = []

    def timed(self, name: str, fn: Callable[..., object], *args: object, **kw: object) -> object:
        t0 = time.thread_time()
        out = fn(*args, **kw)
        self.cpu[name] += time.thread_time() - t0
        return out

    def set_up(self, n: int) -> None:
        p, t, group = self.pool, self.timed, f"call-{n}"
        t("admits", p.admits, time.monotonic())
        a = t("open_stream", p.open_stream, group=group, dtmf="auto")
        t("set_remote", p.set_remote, a, "127.0.0.1", 6000 + 2 * (n % 1000), codec="PCMU",
          pt=0, event_pt=101)
        b = t("open_stream", p.open_stream, group=group, dtmf="auto")
        t("local_port", p.local_port, b)
        t("set_dtmf", p.set_dtmf, a, mode="auto", forward=False)
        t("set_dtmf", p.set_dtmf, b, mode="auto", forward=False)
        t("set_remote", p.set_remote, b, "127.0.0.1", 16000 + 2 * (n % 1000), codec="PCMU",
          pt=0, event_pt=101)
        t("local_port", p.local_port, a)
        t("connect", p.connect, a, b)
        self.up.append((int(a), int(b)))  # type: ignore[call-overload]

    def hang_up(self) -> None:
        p, t = self.pool, self.timed
        a, b = self.up.pop(0)
        t("play_silence", p.play_silence, b)
        for sid in (a, b):
            t("close_stream", p.close_stream, sid)


def run(calls: int, live: int, rate: float, ports: tuple[int, int] = PORTS) -> Counter[str]:
    """Thread CPU seconds per command name over `calls` calls (after `live` warm-up ones)."""
    loop = asyncio.new_event_loop()
    pool = MediaPool("127.0.0.1", *ports, threads=1, max_busy=0.75, rtp_timeout=0)
    pool.start(loop, lambda ev: None)
    churn = Churn(pool)
    try:
        for n in range(live):
            churn.set_up(n)
        churn.cpu.clear()
        start = time.monotonic()
        for n in range(live, live + calls):
            time.sleep(max(0.0, start + (n - live) / rate - time.monotonic()))
            churn.set_up(n)
            churn.hang_up()
        return churn.cpu
    finally:
        while churn.up:
            churn.hang_up()
        pool.stop()
        loop.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=3000)
    parser.add_argument("--live", type=int, default=300, help="calls kept up at once")
    parser.add_argument("--rate", type=float, default=600.0, help="calls started per second")
    parser.add_argument("--ports", type=int, nargs=2, default=PORTS, metavar=("MIN", "MAX"),
                        help="RTP port range (another bench in the same one costs failed binds)")
    parser.add_argument("--split", action="store_true", help="CPU per command name")
    args = parser.parse_args()
    cpu = run(args.calls, args.live, args.rate, tuple(args.ports))
    if args.split:
        for name, seconds in cpu.most_common():
            print(f"  {name:14s} {seconds * 1e6 / args.calls:7.2f} us/call")
    print(f"{args.calls} calls at {args.rate:g}/s ({args.live} up): engine commands "
          f"{sum(cpu.values()) * 1e6 / args.calls:.1f} us/call of signalling-thread CPU")


if __name__ == "__main__":
    main()
