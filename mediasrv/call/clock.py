"""The call layer's clock: the time and the timers it is given, never read from the world.

How this works: like the SIP core takes `now` as an argument, the call layer takes a `Clock`
and reads no `time.time()` / `loop.call_later()` of its own. `now()` is monotonic seconds
(the loop's clock, comparable with media event times), `wall()` is UNIX time for records and
registrations, `call_later`/`call_soon` run a callback later on the same thread. The server
gives a `LoopClock` (asyncio); unit tests give a fake clock they advance by hand, so a ring
timeout of 20 s takes no time at all.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Protocol

from mediasrv.call.api import Timer


class Clock(Protocol):
    def now(self) -> float:
        """Monotonic seconds (the event loop's clock)."""
    def wall(self) -> float:
        """UNIX time, for call records, registrations and events."""
    def call_later(self, delay: float, callback: Callable[..., object], *args: object) -> Timer:
        """Runs `callback(*args)` after `delay` seconds."""
    def call_soon(self, callback: Callable[..., object], *args: object) -> None:
        """Runs `callback(*args)` once the current event has been handled."""


class LoopClock:
    """The asyncio loop's clock and timers, for the running server."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop

    def now(self) -> float:
        return self.loop.time()

    def wall(self) -> float:
        return time.time()

    def call_later(self, delay: float, callback: Callable[..., object], *args: object) -> Timer:
        return self.loop.call_later(delay, callback, *args)

    def call_soon(self, callback: Callable[..., object], *args: object) -> None:
        self.loop.call_soon(callback, *args)
