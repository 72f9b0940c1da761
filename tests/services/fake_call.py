"""A fake call model for service tests: `FakeCall` implements `CallControl` in memory.

How this works: every leg has one "what it hears" entry: another leg (bridge), the others of a
mix, MoH of a class, a prompt, a tone, silence, or a mailbox recording. A media action on a
leg replaces its entry and breaks whatever it was joined to (the old bridge partner hears
silence; a mix loses the member), as in the engine. `hears(leg)` reads it back as a short
string. Timers run on a manual clock (`advance`). Dials, hang-ups, DTMF sent, mutes and
published events are recorded. The driver methods (`call`, `press`, `answer`, `fail`,
`far_hangup`, `prompt_done`) feed the `ServiceHost` the events the B2BUA would.
"""

from __future__ import annotations

import heapq
import itertools
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from mediasrv.call.api import (
    CallAnswered,
    CallEvent,
    DigitReceived,
    LegAnswered,
    LegFailed,
    LegHungUp,
    LegRinging,
    Owner,
    PromptFinished,
)
from mediasrv.config import Extension, FailoverAction


@dataclass(eq=False)
class FakeLeg:
    id: str
    call_id: str
    extension: Extension | None
    number: str
    language: str = "en"
    answered: bool = True
    ended: bool = False


@dataclass
class FakeTimer:
    when: float
    callback: Callable[[], None]
    cancelled: bool = False

    def cancel(self) -> None:
        self.cancelled = True


@dataclass
class FakeCall:
    """`CallControl` over an in-memory "who hears whom" model and a manual clock."""

    exts: Mapping[str, Extension]
    host: Any = None  # the ServiceHost fed by the driver methods
    now: float = 0.0
    legs: dict[str, FakeLeg] = field(default_factory=dict)
    media: dict[str, tuple[Any, ...]] = field(default_factory=dict)
    dials: list[tuple[str, str, str]] = field(default_factory=list)  # number, caller, purpose
    hangups: list[str] = field(default_factory=list)
    sent: list[tuple[str, str]] = field(default_factory=list)  # (to leg, digits)
    muted: dict[str, bool] = field(default_factory=dict)
    held_back: set[str] = field(default_factory=set)
    owners: dict[str, Owner] = field(default_factory=dict)
    published: list[tuple[str, str, dict[str, object]]] = field(default_factory=list)
    _timers: list[tuple[float, int, FakeTimer]] = field(default_factory=list)
    _seq: itertools.count = field(default_factory=itertools.count)
    _plays: itertools.count = field(default_factory=lambda: itertools.count(1))

    # ------------------------------------------------------------------ CallControl

    def peer_of(self, leg: FakeLeg) -> FakeLeg | None:
        what = self.media.get(leg.id, ())
        if what[:1] == ("leg",) and self.media.get(what[1], ())[:2] == ("leg", leg.id):
            return self.legs[what[1]]
        return None

    def extensions(self) -> Mapping[str, Extension]:
        return self.exts

    def bridge(self, a: FakeLeg, b: FakeLeg) -> None:
        if a.ended or b.ended:
            return
        self._set(a, ("leg", b.id))
        self._set(b, ("leg", a.id))

    def mix(self, legs: list[FakeLeg]) -> None:
        live = [leg for leg in legs if not leg.ended]
        for leg in live:
            self._set(leg, ("mix", frozenset(o.id for o in live if o is not leg)))

    def hold(self, leg: FakeLeg, moh_class: str = "") -> None:
        ext_class = leg.extension.moh_class if leg.extension else ""
        self._set(leg, ("moh", moh_class or ext_class or "default"))

    def play_prompt(self, leg: FakeLeg, name: str) -> int:
        play_id = next(self._plays)
        self._set(leg, ("prompt", name, play_id))
        return play_id

    def play_tone(self, leg: FakeLeg, tone: str) -> None:
        assert tone in ("ringback", "busy", "beep", "failed")
        self._set(leg, ("tone", tone))

    def silence(self, leg: FakeLeg) -> None:
        self._set(leg, ("silence",))

    def send_dtmf(self, leg: FakeLeg, digits: str) -> None:
        if not leg.ended:
            self.sent.append((leg.id, digits))

    def mute(self, leg: FakeLeg, muted: bool) -> None:
        self.muted[leg.id] = muted

    def hold_back_dtmf(self, leg: FakeLeg, on: bool) -> None:
        (self.held_back.add if on else self.held_back.discard)(leg.id)

    def dial(self, number: str, *, caller: FakeLeg, purpose: str) -> FakeLeg:
        leg = FakeLeg(f"out{next(self._seq)}:{number}", f"call-{number}", self.exts.get(number),
                      number, answered=False)
        self.legs[leg.id] = leg
        self.media[leg.id] = ("nothing",)
        self.dials.append((number, caller.id, purpose))
        return leg

    def hangup(self, leg: FakeLeg, status: int = 0) -> None:
        if leg.ended:
            return
        self.hangups.append(leg.id)
        self._end(leg)

    def take_over(self, leg: FakeLeg, owner: Owner) -> None:
        self.owners[leg.id] = owner

    def release(self, leg: FakeLeg, owner: Owner) -> None:
        if self.owners.get(leg.id) is owner:
            del self.owners[leg.id]

    def owner_of(self, leg: FakeLeg) -> Owner | None:
        return self.owners.get(leg.id)

    def voicemail(self, leg: FakeLeg, mailbox: str) -> None:
        self._set(leg, ("voicemail", mailbox))

    def schedule(self, delay: float, callback: Callable[[], None]) -> FakeTimer:
        timer = FakeTimer(self.now + delay, callback)
        heapq.heappush(self._timers, (timer.when, next(self._seq), timer))
        return timer

    def publish(self, leg: FakeLeg, kind: str, **fields: object) -> None:
        self.published.append((leg.call_id, kind, fields))

    # ------------------------------------------------------------------ media model

    def _set(self, leg: FakeLeg, what: tuple[Any, ...]) -> None:
        if leg.ended:
            return
        self._unjoin(leg)
        self.media[leg.id] = what

    def _unjoin(self, leg: FakeLeg) -> None:
        what = self.media.get(leg.id, ())
        if self.peer_of(leg) is not None:
            self.media[what[1]] = ("silence",)
        elif what[:1] == ("mix",):
            for other in what[1]:
                theirs = self.media.get(other, ())
                if theirs[:1] == ("mix",):
                    self.media[other] = ("mix", theirs[1] - {leg.id})

    def _end(self, leg: FakeLeg) -> None:
        self._unjoin(leg)
        leg.ended = True
        self.media[leg.id] = ("ended",)

    def hears(self, leg: FakeLeg) -> str:
        """What the leg hears: a leg id, "a+b" for a mix, "moh:CLASS", "prompt:NAME",
        "tone:NAME", "voicemail:BOX", "silence", "nothing" or "ended"."""
        what = self.media.get(leg.id, ("nothing",))
        if what[0] == "leg":
            return what[1]
        if what[0] == "mix":
            return "+".join(sorted(what[1]))
        return ":".join(str(x) for x in what[:2])

    def talking(self, a: FakeLeg, b: FakeLeg) -> bool:
        return self.peer_of(a) is b

    # ------------------------------------------------------------------ the driver

    def new_leg(self, leg_id: str, number: str, internal: bool = True) -> FakeLeg:
        leg = FakeLeg(leg_id, f"call-{leg_id}", self.exts[number] if internal else None, number)
        self.legs[leg_id] = leg
        self.media[leg_id] = ("nothing",)
        return leg

    def call(self, caller: FakeLeg, callee: FakeLeg) -> None:
        """An ordinary call is established between the two legs."""
        callee.call_id = caller.call_id
        self.bridge(caller, callee)
        self.feed(CallAnswered(caller, callee))

    def feed(self, event: CallEvent) -> bool:
        """Gives the event to the host; when no service used a digit of a leg whose DTMF is
        not held back, the "engine" forwards it to the peer, as the B2BUA would."""
        used = self.host.handle(event)
        if isinstance(event, DigitReceived) and not used and event.leg.id not in self.held_back:
            peer = self.peer_of(event.leg)  # type: ignore[arg-type]
            if peer is not None:
                self.sent.append((peer.id, event.digit))
        return used

    def press(self, leg: FakeLeg, digits: str, source: str = "rfc4733") -> None:
        for digit in digits:
            self.feed(DigitReceived(leg, digit, source))

    def prompt_done(self, leg: FakeLeg) -> None:
        what = self.media[leg.id]
        assert what[0] == "prompt", f"{leg.id} hears {what}, not a prompt"
        self.media[leg.id] = ("silence",)
        self.feed(PromptFinished(leg, what[2]))

    def ring(self, leg: FakeLeg) -> None:
        self.feed(LegRinging(leg))

    def answer(self, leg: FakeLeg) -> None:
        leg.answered = True
        self.media[leg.id] = ("silence",)
        self.feed(LegAnswered(leg))

    def fail(self, leg: FakeLeg, condition: str, status: int = 486) -> None:
        """The dialled leg fails; the action is its extension's failover for `condition`."""
        ext = self.exts.get(leg.number)
        action = ext.failover.get(condition) if ext else None
        self._end(leg)
        self.feed(LegFailed(leg, condition, action or FailoverAction("return"), status))

    def far_hangup(self, leg: FakeLeg) -> None:
        self._end(leg)
        self.feed(LegHungUp(leg))

    def advance(self, seconds: float) -> None:
        """Moves the clock on, running due timers in order."""
        end = self.now + seconds
        while self._timers and self._timers[0][0] <= end:
            when, _, timer = heapq.heappop(self._timers)
            self.now = max(self.now, when)
            if not timer.cancelled:
                timer.callback()
        self.now = end

    @property
    def pending_timers(self) -> int:
        return sum(1 for _, _, t in self._timers if not t.cancelled)

    def sent_to(self, leg_id: str) -> str:
        """Every digit sent to the leg so far, in order, as one string."""
        return "".join(d for to, d in self.sent if to == leg_id)

    def states(self, kind: str = "transfer") -> list[object]:
        return [fields["state"] for _, k, fields in self.published if k == kind]
