"""Which pytest-xdist worker runs this process, and the port windows that belong to it.

`make test` runs the suite on several xdist workers (processes) at once. Tests that bind a
fixed range of loopback ports take it from a window of their own worker's slice, so two
workers never hand the same ports to two servers. Outside xdist there is one worker (index 0
of 1) and the whole range is its slice.

Port map: 10000-11999 peer processes (SIPp's media, baresip's SIP and control ports),
12000-19639 engine tests, 20000-32599 test servers' RTP ranges. All of it lies below Linux's
ephemeral range (32768-60999 by default), where single ports picked with bind(port 0) come
from, so those never land in a window.
"""

from __future__ import annotations

import itertools
import os
from collections.abc import Iterator


def worker() -> tuple[int, int]:
    """(index, count) of this xdist worker; (0, 1) when the tests run in one process."""
    name = os.environ.get("PYTEST_XDIST_WORKER", "")
    count = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1") or 1)
    if not name.startswith("gw"):
        return 0, 1
    return int(name[2:]) % count, count


def windows(first: int, last: int, size: int) -> range:
    """The start ports of this worker's windows of `size` ports within first..last."""
    index, count = worker()
    total = (last - first + 1) // size
    share = total // count
    if share < 1:
        raise RuntimeError(f"ports {first}-{last} hold {total} windows of {size} "
                           f"for {count} workers")
    lo = first + index * share * size
    return range(lo, lo + share * size, size)


_cycles: dict[tuple[int, int, int], Iterator[int]] = {}


def next_window(first: int, last: int, size: int) -> int:
    """The start of the next window of this worker's slice, round-robin (a test's server
    closes its ports at teardown, before the window comes round again)."""
    key = (first, last, size)
    if key not in _cycles:
        _cycles[key] = itertools.cycle(windows(first, last, size))
    return next(_cycles[key])


def server_rtp_ports() -> tuple[int, int]:
    """An RTP range (`[rtp] ports`) of 200 ports for a test's server: 100 streams."""
    base = next_window(20000, 32599, 200)
    return base, base + 199


def engine_ports(size: int) -> tuple[int, int]:
    """A window of up to 40 ports for an engine test (12000-19639, below the servers')."""
    assert size <= 40, size
    base = next_window(12000, 19639, 40)
    return base, base + size - 1


def peer_ports() -> int:
    """The first (even) of 16 consecutive ports (10000-11999) for a peer process: SIPp's -mp
    and -mp + 2; baresip's SIP port (+ 1 for TLS), control port (+ 2) and RTP ports (+ 8 to
    + 15, where baresip would otherwise pick at random in 10000-20000)."""
    return next_window(10000, 11999, 16)
