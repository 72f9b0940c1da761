"""The call model's API for services: what a service may ask, and what it is told.

How this works: a service never touches SIP or the engine. The server gives each enabled
service a `CallControl` (implemented by the B2BUA) and calls the service's `handle(event)`
with the `CallEvent`s below for the legs it may act on. Every action is a method of
`CallControl` on `Leg` objects. Media actions replace what a leg *hears*:

- `bridge(a, b)`: a and b hear each other (and nothing else);
- `mix([a, b, c])`: each hears all the others (mix-minus);
- `hold(leg)`: the leg hears music on hold;
- `play_prompt(leg, name)` / `play_tone(leg, tone)`: the leg hears that;
- `silence(leg)`: the leg hears nothing (RTP silence keeps flowing).

A leg is heard by whoever its current bridge or mix joins it to; a held leg is heard by
no one. Signalling actions: `dial()` places a new outbound leg towards an extension, with
the extension's failover applied (`forward` is followed by the call layer; the other actions
come back as `LegFailed` with the action the service must carry out in its own context);
`hangup(leg)` ends a leg.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Protocol

from mediasrv.config import Extension, FailoverAction


class Timer(Protocol):
    def cancel(self) -> None: ...


class Leg(Protocol):
    """One party of a call as services see it: one SIP dialog and one media stream."""

    @property
    def id(self) -> str: ...
    @property
    def call_id(self) -> str:
        """The id of the call this leg belongs to (logs, events)."""
    @property
    def extension(self) -> Extension | None:
        """The authenticated internal extension on this leg, None for external parties."""
    @property
    def language(self) -> str: ...
    @property
    def answered(self) -> bool: ...
    @property
    def ended(self) -> bool: ...
    @property
    def number(self) -> str:
        """The extension number (internal) or the user part of the remote URI (external)."""


class Owner(Protocol):
    """Whoever took a leg over (`CallControl.take_over`): a service session."""

    @property
    def name(self) -> str:
        """The owning service's name (shown by the API, logged)."""


class CallControl(Protocol):
    """What a service can do. Every method is safe to call on an ended leg (it does nothing)."""

    def peer_of(self, leg: Leg) -> Leg | None:
        """The leg this one is bridged with, if any."""

    def extensions(self) -> Mapping[str, Extension]: ...

    def bridge(self, a: Leg, b: Leg) -> None: ...
    def mix(self, legs: list[Leg]) -> None: ...
    def hold(self, leg: Leg, moh_class: str = "") -> None:
        """MoH class resolution: the given class, else the leg's extension class, else default."""
    def play_prompt(self, leg: Leg, name: str) -> int:
        """Plays sounds/<leg.language>/<name>.wav to the leg; returns a play id for
        `PromptFinished`. Replaces what the leg heard."""
    def play_tone(self, leg: Leg, tone: str) -> None:
        """"ringback", "busy", "beep" or "failed", in the server's indication zone."""
    def silence(self, leg: Leg) -> None: ...

    def send_dtmf(self, leg: Leg, digits: str) -> None:
        """Sends digits to the leg's phone as RFC 4733 events (in-band if it has none)."""
    def mute(self, leg: Leg, muted: bool) -> None:
        """While muted, the leg's in-band audio is replaced by silence for whoever hears it."""
    def hold_back_dtmf(self, leg: Leg, on: bool) -> None:
        """While on, the leg's DTMF digits reach only services (not forwarded as RFC 4733)."""

    def dial(self, number: str, *, caller: Leg, purpose: str, failover: bool = True,
             replaces: str = "") -> Leg:
        """Places a call to extension `number` on behalf of `caller` (its identity shown as the
        From). Events for the new leg follow: LegRinging, LegAnswered, LegFailed, LegHungUp.
        While it rings the new leg is heard by no one and hears nothing; the service decides
        what the caller hears (e.g. `play_tone(caller, "ringback")`). `purpose` is logged.
        `failover=False`: no forward is followed (a failure comes back as `return`).
        `replaces`: a Replaces header value (RFC 3891) naming a dialog another node holds; the
        INVITE carries it and goes to `sip.outbound_proxy`, which routes it to that node."""
    def hangup(self, leg: Leg, status: int = 0) -> None:
        """BYE an answered leg, CANCEL a ringing outbound one, or answer an unanswered inbound
        one with `status` (default 480)."""

    def take_over(self, leg: Leg, owner: Owner) -> None:
        """`owner` (a service session) now owns the leg: events of its call go to it first,
        and the B2BUA stops treating the leg's hang-up as the end of its call. A leg has one
        owner at a time; this is the only record of it."""
    def release(self, leg: Leg, owner: Owner) -> None:
        """`owner` gives the leg back (a no-op if another owner took it since): an ordinary
        two-party call again, if bridged."""
    def owner_of(self, leg: Leg) -> Owner | None:
        """Who owns the leg now (None: the ordinary call)."""

    def voicemail(self, leg: Leg, mailbox: str) -> None:
        """Greeting prompt, beep, then records the leg's audio to extension `mailbox`'s box
        (WAV + an index row) until the leg hangs up or the mailbox's maximum length. A later
        media action on the leg (bridge, mix, hold, play, silence) ends the recording and keeps
        what was recorded: that is how a service cancels it (transfer `*0`)."""

    def transfer_progress(self, leg: Leg, status: int) -> None:
        """Reports the transfer `leg`'s phone asked for (`TransferRequested`): 1xx while it
        runs, then one final status; the phone gets them as NOTIFY sipfrags (RFC 3515)."""

    def schedule(self, delay: float, callback: Callable[[], None]) -> Timer:
        """Runs `callback` after `delay` seconds on the call layer's clock."""

    def publish(self, leg: Leg, kind: str, **fields: object) -> None:
        """Logs the event with the call id and publishes it to the event stream."""


# --------------------------------------------------------------------------- events


@dataclass(frozen=True)
class CallEvent:
    leg: Leg


@dataclass(frozen=True)
class DigitReceived(CallEvent):
    digit: str
    source: str  # "rfc4733" | "inband"


@dataclass(frozen=True)
class CallAnswered(CallEvent):
    """An ordinary two-party call between `leg` (the caller) and `peer` is now established."""

    peer: Leg


@dataclass(frozen=True)
class LegRinging(CallEvent):
    """A leg placed with `dial()` rings (180/183)."""


@dataclass(frozen=True)
class LegAnswered(CallEvent):
    """A leg placed with `dial()` answered (200 OK; its media is connected to nothing)."""


@dataclass(frozen=True)
class LegFailed(CallEvent):
    """A leg placed with `dial()` did not answer. `condition` is busy / no_answer /
    not_registered; `action` is the failover action left for the service to carry out
    (return, announce, hangup, voicemail) after any forward hops; `status` is the SIP cause."""

    condition: str
    action: FailoverAction
    status: int


@dataclass(frozen=True)
class LegHungUp(CallEvent):
    """The leg ended by the far side (BYE, CANCEL) or by a timeout."""


@dataclass(frozen=True)
class PromptFinished(CallEvent):
    play_id: int


@dataclass(frozen=True)
class TransferRequested(CallEvent):
    """The phone on `leg` (the transferer) asked, with its own Transfer key (REFER), for
    `party` to be transferred: blind to extension `number`, or (attended, Replaces) to
    `target`, the party of the transferer's `replaced` leg — answered (join them) or still
    ringing (it now rings for `party`). Behind a proxy, an attended transfer whose Replaces
    names a dialog this node does not hold comes with `replaces` (the Replaces value) and
    `number` (the Refer-To user): `party` is to dial it with that Replaces (RFC 5589 §7).
    `failover`: whether the target's failover may run (not when the call had direct media).
    Progress goes back with `transfer_progress`."""

    party: Leg
    number: str = ""
    target: Leg | None = None
    replaced: Leg | None = None
    failover: bool = True
    replaces: str = ""
