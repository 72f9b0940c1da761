"""Who hears what: the media topology of all legs, applied to the engine.

How this works (rtpengine's subscriptions, reduced to one rule): every leg *hears* exactly
one `Feed` at a time — another leg (a bridge is two such subscriptions), a mix-minus group,
music on hold, a prompt, a tone, or silence. Each change is recorded here and sent to the
engine in the same call. When a leg changes what it hears, or leaves, any leg that was
hearing it through a bridge is switched to silence and a mix it belonged to shrinks (two
left: they become a plain bridge), so no leg ever hears a stale source.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from mediasrv.call.leg import SipLeg
from mediasrv.media.engine import MediaEngine


@dataclass(frozen=True)
class Feed:
    kind: str  # "peer" | "mix" | "moh" | "prompt" | "tone" | "silence"
    peer: SipLeg | None = None
    group: tuple[SipLeg, ...] = ()
    name: str = ""


SILENCE = Feed("silence")


class Topology:
    def __init__(self, engine: MediaEngine) -> None:
        self.engine = engine
        self.feeds: dict[SipLeg, Feed] = {}

    def hears(self, leg: SipLeg) -> Feed:
        return self.feeds.get(leg, SILENCE)

    def peer_of(self, leg: SipLeg) -> SipLeg | None:
        feed = self.hears(leg)
        return feed.peer if feed.kind == "peer" else None

    def group_of(self, leg: SipLeg) -> tuple[SipLeg, ...]:
        feed = self.hears(leg)
        return feed.group if feed.kind == "mix" else ()

    # ------------------------------------------------------------------ changes

    def bridge(self, a: SipLeg, b: SipLeg) -> None:
        self._leave(a, keep=(b,))
        self._leave(b, keep=(a,))
        self.feeds[a], self.feeds[b] = Feed("peer", peer=b), Feed("peer", peer=a)
        self.engine.connect(a.stream, b.stream)

    def mix(self, legs: list[SipLeg]) -> None:
        group = tuple(legs)
        for leg in group:
            self._leave(leg, keep=group)
        for leg in group:
            self.feeds[leg] = Feed("mix", group=group)
        self.engine.conference([leg.stream for leg in group])

    def moh(self, leg: SipLeg, moh_class: str) -> None:
        self._set(leg, Feed("moh", name=moh_class))
        self.engine.play_moh(leg.stream, moh_class)

    def prompt(self, leg: SipLeg, name: str) -> int:
        self._set(leg, Feed("prompt", name=name))
        return self.engine.play_prompt(leg.stream, name)

    def tone(self, leg: SipLeg, tone: str) -> None:
        self._set(leg, Feed("tone", name=tone))
        self.engine.play_tone(leg.stream, tone)

    def silence(self, leg: SipLeg) -> None:
        self._set(leg, SILENCE)
        self.engine.play_silence(leg.stream)

    def remove(self, leg: SipLeg) -> None:
        """The leg is gone: nobody hears it any more; it hears nothing."""
        self._leave(leg, keep=())
        self.feeds.pop(leg, None)

    # ------------------------------------------------------------------ internals

    def _set(self, leg: SipLeg, feed: Feed) -> None:
        self._leave(leg, keep=())
        self.feeds[leg] = feed

    def _leave(self, leg: SipLeg, keep: tuple[SipLeg, ...]) -> None:
        """`leg` stops hearing what it heard; whoever heard `leg` (outside `keep`) adapts."""
        old = self.hears(leg)
        self.feeds[leg] = SILENCE
        if old.kind == "mix":
            rest = [m for m in old.group
                    if m is not leg and m not in keep and self.hears(m) == old]
            self._shrink(rest)
        elif old.kind == "peer" and old.peer is not None and old.peer not in keep:
            if self.peer_of(old.peer) is leg:
                self.feeds[old.peer] = SILENCE
                self.engine.play_silence(old.peer.stream)

    def _shrink(self, rest: list[SipLeg]) -> None:
        if len(rest) >= 3:
            self.mix(rest)
        elif len(rest) == 2:
            self.bridge(rest[0], rest[1])
        elif rest:
            self.feeds[rest[0]] = SILENCE
            self.engine.play_silence(rest[0].stream)


class WatchedTopology(Topology):
    """The media topology, telling its `watchers` which legs each change touched (and whether
    the change was a new bridge): direct media watches it."""

    def __init__(self, engine: MediaEngine) -> None:
        super().__init__(engine)
        self.watchers: list[Callable[[set[SipLeg], bool], None]] = []

    def on_change(self, legs: set[SipLeg], bridged: bool) -> None:
        for watcher in self.watchers:
            watcher(legs, bridged)

    def _touched(self, legs: tuple[SipLeg, ...]) -> set[SipLeg]:
        out = set(legs)
        for leg in legs:
            feed = self.hears(leg)
            out.update(feed.group)
            if feed.peer is not None:
                out.add(feed.peer)
        return out

    def bridge(self, a: SipLeg, b: SipLeg) -> None:
        touched = self._touched((a, b))
        super().bridge(a, b)
        self.on_change(touched, True)

    def mix(self, legs: list[SipLeg]) -> None:
        touched = self._touched(tuple(legs))
        super().mix(legs)
        self.on_change(touched, False)

    def moh(self, leg: SipLeg, moh_class: str) -> None:
        touched = self._touched((leg,))
        super().moh(leg, moh_class)
        self.on_change(touched, False)

    def prompt(self, leg: SipLeg, name: str) -> int:
        touched = self._touched((leg,))
        play_id = super().prompt(leg, name)
        self.on_change(touched, False)
        return play_id

    def tone(self, leg: SipLeg, tone: str) -> None:
        touched = self._touched((leg,))
        super().tone(leg, tone)
        self.on_change(touched, False)

    def silence(self, leg: SipLeg) -> None:
        touched = self._touched((leg,))
        super().silence(leg)
        self.on_change(touched, False)

    def remove(self, leg: SipLeg) -> None:
        touched = self._touched((leg,))
        super().remove(leg)
        self.on_change(touched, False)
