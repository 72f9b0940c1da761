"""REFER transfers as a built-in service: what a phone's own Transfer key asked for.

How this works: the call layer answers the REFER (checks, 202, the implicit subscription,
RFC 3515; the Replaces look-up, RFC 3891) and tells the services `TransferRequested`. This
service takes it on the same contract as `#1`/`#4`: a `Session` owns the legs it moves
(`CallControl.take_over`), gets their events first, and reports progress with
`CallControl.transfer_progress`, which the call layer sends as NOTIFY sipfrags.

- Blind (RFC 5589 §6): the transferred party hears ringback while the Refer-To extension is
  dialled for it (its failover applies unless the call had direct media), state
  CALLING_TARGET. Attended to a dialog another node holds (behind a proxy): the same, the
  INVITE carrying the Replaces (no failover: the named dialog is the target; its refusal,
  RFC 3891 §3, goes in the final NOTIFY as it came). Attended to a ringing party (the
  spec's BLOND): that leg now rings for the transferred party. Attended to an answered party
  (RFC 5589 §7): the two are joined at once.
- The outcome: answered, the two talk and the transferer is released (BYE); failed, the
  target's failover action is carried out for the transferred party (announce, voicemail) or
  the transferer gets the call back (RFC 5589 §6 retrieves it); with the transferer gone,
  the transferred party hears the "failed" tone and is let go. The transferer may BYE at any
  time after the 202: the transfer goes on without it.
- Every step is published as a "transfer" event with `service="refer"` (start, progress,
  result); the table is `TRANSITIONS`, states named as in the transfer spec.
"""

from __future__ import annotations

from collections.abc import Callable
from enum import StrEnum

from mediasrv.call.api import (
    CallControl,
    CallEvent,
    Leg,
    LegAnswered,
    LegFailed,
    LegHungUp,
    LegRinging,
    PromptFinished,
    TransferRequested,
)
from mediasrv.config import FailoverAction, ServiceConfig
from mediasrv.services.base import Service, Session

NAME = "refer"
FAILED_TONE_SECONDS = 2.0  # the "failed" tone a transferred party hears before it is let go
CONDITION_STATUS = {"busy": 486, "no_answer": 480}


class State(StrEnum):
    CALLING_TARGET = "CALLING_TARGET"
    BLOND = "BLOND"
    COMPLETE = "COMPLETE"
    FAIL = "FAIL"


class Ev(StrEnum):
    ANSWERED = "answered"
    FAILED = "failed"
    TARGET_HANGUP = "target_hangup"
    TRANSFERRED_HANGUP = "transferred_hangup"


S, E = State, Ev
TRANSITIONS: dict[tuple[State, Ev], tuple[str, State]] = {
    (S.CALLING_TARGET, E.ANSWERED): ("complete", S.COMPLETE),
    (S.CALLING_TARGET, E.FAILED): ("fail", S.FAIL),
    (S.CALLING_TARGET, E.TARGET_HANGUP): ("fail", S.FAIL),
    (S.CALLING_TARGET, E.TRANSFERRED_HANGUP): ("abandon", S.FAIL),
    (S.BLOND, E.ANSWERED): ("complete", S.COMPLETE),
    (S.BLOND, E.FAILED): ("fail", S.FAIL),
    (S.BLOND, E.TARGET_HANGUP): ("fail", S.FAIL),
    (S.BLOND, E.TRANSFERRED_HANGUP): ("abandon", S.FAIL),
}


class ReferSession(Session):
    """One blind or blond transfer in progress; its table is `TRANSITIONS`."""

    TRANSITIONS = TRANSITIONS
    KIND = "transfer"

    def __init__(self, service: ReferTransfer, request: TransferRequested, target: Leg,
                 state: State) -> None:
        super().__init__(service, request.party, state)
        self.transferer, self.transferred, self.target = request.leg, request.party, target
        self.failover = request.failover
        self.remote = bool(request.replaces)  # the target is a dialog on another node
        self.action = FailoverAction("return")
        self.status = 0
        self.announcing: Leg | None = None  # the party hearing the failover prompt

    # ------------------------------------------------------------------ events

    def handle(self, event: CallEvent) -> bool:
        leg = event.leg
        if isinstance(event, PromptFinished) and leg is self.announcing:
            self.announcing = None
            self.hang_up(leg)
            self.finish([])
        elif isinstance(event, LegHungUp) and self.announcing is not None:
            self.finish([])
        elif isinstance(event, LegHungUp) and leg is self.transferer:
            self.gone(leg)  # the transferer may leave right after the 202 (RFC 5589 §6)
        elif isinstance(event, LegRinging) and leg is self.target:
            self.report("progress", progress="ringing")
        elif isinstance(event, LegAnswered) and leg is self.target:
            self.fire(E.ANSWERED)
        elif isinstance(event, LegFailed) and leg is self.target:
            self.gone(leg)
            self.action, self.status = event.action, event.status
            self.fire(E.FAILED)
        elif isinstance(event, LegHungUp):
            self.gone(leg)
            self.fire(E.TARGET_HANGUP if leg is self.target else E.TRANSFERRED_HANGUP)
        return True

    def fire(self, event: StrEnum) -> None:
        row = self.TRANSITIONS.get((self.state, event))  # type: ignore[call-overload]
        if row is None or self.finished:
            return
        action, self.state = row
        getattr(self, action)()
        self.report("result", event=str(event), status=self.status)
        if self.announcing is None:
            self.finish(self.connected())

    # ------------------------------------------------------------------ actions

    def complete(self) -> None:
        """The target answered: it talks to the transferred party; the transferer goes."""
        self.status = 200
        self.control.bridge(self.transferred, self.target)
        self.control.transfer_progress(self.transferer, 200)
        self.hang_up(self.transferer)

    def fail(self) -> None:
        """The target did not answer: its failover runs for the transferred party, or the
        transferer gets the call back."""
        condition = "busy" if self.status in (486, 600) else "no_answer"
        if not (self.remote and self.status >= 300):  # the other node's RFC 3891 answer
            self.status = CONDITION_STATUS[condition]   # as is: 481, 603, 486
        self.control.transfer_progress(self.transferer, self.status)
        action = self.action.action if self.failover else "return"
        if action in ("announce", "voicemail") and self.alive(self.transferred):
            self._carry_out(action)
            self.hang_up(self.transferer)
        else:
            self._reconnect_or_release()

    def abandon(self) -> None:
        """The transferred party hung up while the target rang."""
        self.status = 487
        self.hang_up(self.target)
        self.control.transfer_progress(self.transferer, 487)
        self.hang_up(self.transferer)

    def _carry_out(self, action: str) -> None:
        if action == "announce":
            self.announcing = self.transferred
            self.control.play_prompt(self.transferred, self.action.prompt or "unavailable")
        else:
            self.control.voicemail(self.transferred, self.target.number)

    def _reconnect_or_release(self) -> None:
        transferer, transferred = self.transferer, self.transferred
        if not self.alive(transferer) and not self.alive(transferred):
            return
        if not self.alive(transferer):
            self.control.play_tone(transferred, "failed")
            control = self.control  # the tone outlives the session, the hang-up follows it
            control.schedule(FAILED_TONE_SECONDS, lambda: control.hangup(transferred))
        elif not self.alive(transferred):
            self.hang_up(transferer)
        else:
            self.control.bridge(transferer, transferred)

    def connected(self) -> list[Leg]:
        """The two left talking: the parties (complete) or the original call (given back)."""
        pair = [self.transferred, self.target] if self.state is S.COMPLETE else \
            [self.transferer, self.transferred]
        return pair if all(self.alive(leg) for leg in pair) else []

    # ------------------------------------------------------------------ events out

    def describe(self) -> dict[str, object]:
        return {"transferer": self.transferer.number, "target": self.target.number,
                "failover": self.failover}

    def report(self, phase: str, **fields: object) -> None:
        self.control.publish(self.anchor, "transfer", service=NAME, state=str(self.state),
                             phase=phase, transferred=self.transferred.number,
                             **self.describe(), **fields)


class ReferTransfer(Service):
    """The built-in service behind REFER: always on, no codes (the phone's key starts it)."""

    name = NAME

    def __init__(self, control: CallControl) -> None:
        super().__init__(control, ServiceConfig(NAME, True, __name__, "(built in)", {}, {}))

    def start(self, leg: Leg, peer: Leg) -> bool:
        return False  # no start code: `transfer()` starts it

    def transfer(self, request: TransferRequested,
                 joined: Callable[[list[Leg]], None]) -> bool:
        """Takes a transfer the call layer accepted (always: True). `joined` is told of two
        parties joined outright, an ordinary call from then on."""
        control, transferer, transferred = self.control, request.leg, request.party
        if request.target is not None and request.target.answered:
            self._join(request, request.target)
            joined([leg for leg in (transferred, request.target) if not leg.ended])
            return True
        control.silence(transferer)
        control.play_tone(transferred, "ringback")
        if request.target is None:
            target = control.dial(request.number, caller=transferred, purpose=NAME,
                                  failover=request.failover, replaces=request.replaces)
            state = S.CALLING_TARGET
        else:
            target, state = request.target, S.BLOND
            if request.replaced is not None:
                control.hangup(request.replaced, 487)  # the transferer's consultation call
        session = ReferSession(self, request, target, state)
        for leg in (transferer, transferred, target):
            session.own(leg)
        session.report("start")
        return True

    def _join(self, request: TransferRequested, target: Leg) -> None:
        """RFC 5589 §7: the named party talks to the transferred party, here, at once."""
        control, fields = self.control, {"transferer": request.leg.number,
                                         "target": target.number}
        publish = _publisher(control, request.party)
        publish("start", **fields)
        control.bridge(request.party, target)
        control.transfer_progress(request.leg, 200)
        if request.replaced is not None:
            control.hangup(request.replaced)
        control.hangup(request.leg)
        publish("result", status=200, **fields)


def _publisher(control: CallControl, anchor: Leg):  # noqa: ANN202
    def publish(phase: str, **fields: object) -> None:
        control.publish(anchor, "transfer", service=NAME, state="COMPLETE", phase=phase,
                        transferred=anchor.number, **fields)
    return publish
