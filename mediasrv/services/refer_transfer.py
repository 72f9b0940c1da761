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
- From there it is `#1`'s blind transfer once its number is known: one implementation,
  `sent_away` in transfer.py (`ReferSession` is a `TransferSession` that starts past the
  dialling phase). Answered, the two talk and the transferer is released (BYE); failed, the
  target's failover action is carried out for the transferred party (announce, voicemail) or
  the transferer gets the call back (RFC 5589 §6 retrieves it); with the transferer gone,
  the transferred party hears the "failed" tone and is let go. The transferer may BYE at any
  time after the 202: the transfer goes on without it. What differs from `#1`: the number
  comes in the Refer-To, and the outcome is reported as a NOTIFY sipfrag (`outcome`: 200,
  486 busy, 480 not reached, 487 the transferred party left; a remote Replaces' answer as
  it came) instead of prompts.
- Every step is published as a "transfer" event with `service="refer"` (start, progress,
  result: COMPLETE, or FAIL also when the call was given back).
"""

from __future__ import annotations

from collections.abc import Callable

from mediasrv.call.api import (
    CallControl,
    CallEvent,
    Leg,
    LegRinging,
    TransferRequested,
)
from mediasrv.config import ServiceConfig
from mediasrv.services.base import Service
from mediasrv.services.transfer import LET_GO, Ev, Rows, State, TransferSession, sent_away

NAME = "refer"

S, E = State, Ev
TRANSITIONS: Rows = {**sent_away(S.CALLING_TARGET), **sent_away(S.BLOND), **LET_GO}


class ReferSession(TransferSession):
    """One blind or blond transfer a REFER asked for; its table is `TRANSITIONS`."""

    TRANSITIONS = TRANSITIONS
    PURPOSE = NAME

    def __init__(self, service: ReferTransfer, request: TransferRequested) -> None:
        super().__init__(service, request.leg, request.party)
        self.anchor = request.party
        self.number = request.number
        self.failover = request.failover
        self.replaces = request.replaces  # the target is a dialog on another node
        self.status = 0  # the NOTIFY's final status
        self._result_published = False

    def dial_addressee(self) -> Leg:
        return self.control.dial(self.number, caller=self.transferred, purpose=NAME,
                                 failover=self.failover, replaces=self.replaces)

    def handle(self, event: CallEvent) -> bool:
        if isinstance(event, LegRinging) and event.leg is self.addressee:
            self.report("progress", progress="ringing")
            return True
        return super().handle(event)

    def outcome(self, status: int) -> None:
        """The transferer's NOTIFY: 200, 487, the remote Replaces' own refusal, else 486
        (busy) or 480 (not reached)."""
        if status not in (200, 487) and not (self.replaces and status >= 300):
            status = 486 if status in (486, 600) else 480
        self.status = status
        self.control.transfer_progress(self.transferer, status)

    # ------------------------------------------------------------------ events out

    def publish(self, **fields: object) -> None:
        """A transition: the first one is the transfer's result (later ones only let the
        transferred party go after a failover prompt or tone)."""
        if not self._result_published:
            self._result_published = True
            self.report("result", event=fields.get("event", ""), status=self.status)

    def finish(self, connected: list[Leg]) -> None:
        if not self.finished and not self._result_published:  # all ended at once (the API)
            self.outcome(487)
            self.state = S.FAIL
            self.publish(event=str(E.TRANSFERRED_HANGUP))
        super().finish(connected)

    def report(self, phase: str, **fields: object) -> None:
        state = S.FAIL if self.state is S.REBRIDGE else self.state  # given back: it failed
        self.control.publish(self.anchor, "transfer", service=NAME, state=str(state),
                             phase=phase, transferred=self.transferred.number,
                             transferer=self.transferer.number, target=self.target.number,
                             failover=self.failover, **fields)


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
        session = ReferSession(self, request)
        if request.target is None:
            session.send_away()  # dials first: no media port, MediaError, nothing taken
            session.state = S.CALLING_TARGET
        else:  # blond: the consultation's ringing leg now rings for the transferred party
            session.addressee, session.state = request.target, S.BLOND
            session.own(request.target)
            control.play_tone(transferred, "ringback")
            if request.replaced is not None:
                control.hangup(request.replaced, 487)  # the transferer's consultation call
        session.own(transferer)
        session.own(transferred)
        control.silence(transferer)
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
