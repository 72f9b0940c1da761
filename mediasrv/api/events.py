"""The call and transfer event stream behind `GET /v1/events` (server-sent events).

How this works: `EventHub.observe` is a B2BUA observer; it hands each event (a flat dict:
`kind`, `call_id`, `leg`, `time`, ...) to every subscriber's bounded queue. A subscriber is one
open SSE connection: `subscribe()` returns an async iterator of (event name, JSON data) pairs
and None every `keepalive` seconds of quiet (sent as an SSE comment, so proxies and clients
see the connection alive). A subscriber that falls `QUEUE_SIZE` events behind is cut off
rather than let it hold memory or slow call handling; its client reconnects. `kinds` filters
by event kind prefix (`?kinds=transfer,leg.` on the URL).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator

QUEUE_SIZE = 1000
_END = object()


class Subscription:
    """One client's queue of pending events."""

    def __init__(self, hub: EventHub, kinds: tuple[str, ...], keepalive: float) -> None:
        self.hub = hub
        self.kinds = kinds
        self.keepalive = keepalive
        self.queue: asyncio.Queue[object] = asyncio.Queue(QUEUE_SIZE)

    def wants(self, kind: str) -> bool:
        return not self.kinds or any(kind.startswith(k) for k in self.kinds)

    def offer(self, event: dict[str, object]) -> None:
        """Queues one event; a full queue cuts this subscriber off."""
        try:
            self.queue.put_nowait(event)
        except asyncio.QueueFull:
            self.hub.unsubscribe(self)  # too slow: cut off, the client reconnects
            self.queue.get_nowait()
            self.queue.put_nowait(_END)

    def end(self) -> None:
        """Ends the iteration after what is already queued."""
        try:
            self.queue.put_nowait(_END)
        except asyncio.QueueFull:
            self.queue.get_nowait()
            self.queue.put_nowait(_END)

    async def events(self) -> AsyncIterator[tuple[str, str] | None]:
        """(kind, JSON) pairs as they come; None after `keepalive` seconds of quiet."""
        while True:
            try:
                item = await asyncio.wait_for(self.queue.get(), self.keepalive)
            except TimeoutError:
                yield None
                continue
            if item is _END:
                return
            assert isinstance(item, dict)
            yield str(item["kind"]), json.dumps(item, default=str)


class EventHub:
    """Fans B2BUA events out to the open event streams."""

    def __init__(self, keepalive: float = 15.0) -> None:
        self.keepalive = keepalive
        self.subscribers: set[Subscription] = set()

    def observe(self, event: dict[str, object]) -> None:
        """The B2BUA observer hook."""
        kind = str(event.get("kind", ""))
        for sub in list(self.subscribers):
            if sub.wants(kind):
                sub.offer(event)

    def subscribe(self, kinds: tuple[str, ...] = ()) -> Subscription:
        """A new stream of the events whose kind starts with one of `kinds` (all if none)."""
        sub = Subscription(self, kinds, self.keepalive)
        self.subscribers.add(sub)
        return sub

    def unsubscribe(self, sub: Subscription) -> None:
        self.subscribers.discard(sub)

    def close(self) -> None:
        """Ends every stream (server stop)."""
        for sub in list(self.subscribers):
            self.unsubscribe(sub)
            sub.end()
