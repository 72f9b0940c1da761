"""systemd readiness notification (sd_notify) without a dependency.

How this works (sd_notify(3)): when systemd starts a `Type=notify` service it passes the path
of a unix datagram socket in `$NOTIFY_SOCKET` (a leading `@` means the abstract namespace).
The service sends newline-separated `KEY=VALUE` lines as one datagram: `READY=1` once it
serves, `RELOADING=1` with `MONOTONIC_USEC=` (CLOCK_MONOTONIC in µs) when it starts re-reading
its configuration, then `READY=1` again, and `STOPPING=1` when it begins to shut down.
Without `$NOTIFY_SOCKET` (not under systemd) every call is a no-op; a send that fails is
logged and otherwise ignored, the service keeps running.
"""

from __future__ import annotations

import logging
import os
import socket
import time

log = logging.getLogger("mediasrv.notify")


def notify(*fields: str) -> bool:
    """Sends `fields` (e.g. "READY=1") to systemd; False when not under systemd or on error."""
    address = os.environ.get("NOTIFY_SOCKET", "")
    if not address:
        return False
    if address.startswith("@"):
        address = "\0" + address[1:]
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
            sock.connect(address)
            sock.sendall("\n".join(fields).encode())
    except OSError as exc:
        log.warning("cannot notify systemd at %s: %s", address.lstrip("\0"), exc)
        return False
    return True


def ready(status: str) -> bool:
    return notify("READY=1", f"STATUS={status}")


def reloading() -> bool:
    return notify("RELOADING=1", f"MONOTONIC_USEC={time.monotonic_ns() // 1000}")


def stopping() -> bool:
    return notify("STOPPING=1")
