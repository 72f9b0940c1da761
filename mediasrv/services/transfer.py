"""What attended and blind transfer share: states, events, dialling phase, failover for one.

How this works (shared/specs/attended-transfer.md): a `TransferSession` starts when the
transferer dials a start code. It owns the transferer (T) and the transferred party (X), puts X
on hold (MoH class: the service's `moh_class`, else X's extension class, else default) and
collects a number from T (`digits.DigitCollector`, the `transfer` prompt). The number is
classified into the events NUMBER_OK / NUMBER_BAD / NUMBER_BAD_LAST (empty, unknown, T's own
or X's number is bad; the last bad try of `dial_attempts` reconnects T and X). Call events of
the owned legs become the table events below; each subclass holds the table.

State names are the spec's (Asterisk's): CALLING_TARGET, HESITANT, CONSULTING, DOUBLECHECKING,
THREEWAY, COMPLETE, REBRIDGE, BLOND, FAIL, plus the phases the spec describes without naming:
COLLECTING (dialling the addressee), ANNOUNCING (a failover prompt or the "failed" tone plays
to T before T is reconnected), VOICEMAIL (T talks to the addressee's mailbox), TARGET_CALL (X
hung up while the addressee rings: T keeps the ringing call), RECALLING (blond = "recall": the
transferer's phone rings for X) and CONSULTATION_KEPT (X left: T and the addressee stay on as
a normal call).

FAIL is where a party left alone hears the outcome (the failover action run for it, see
`fail_over`) before it is hung up; the session ends when no owned leg is left.

Sending X away (`SENT_AWAY`, `send_away`, `complete`, `not_reached`, `abandon`) is the one
implementation of what happens once the number is known and X rings the addressee without T:
`#1` (blind_transfer.py, the number dialled), a REFER (refer_transfer.py, the Refer-To; or
the consultation already ringing, BLOND) and `#4` after T left (BLOND, RECALLING) use these
rows. Answered: X and the addressee talk, T (if still there) is let go. Not reached: the
addressee's failover runs for X (announce, voicemail), or T gets the call back when it is
still there (a REFER's transferer may wait for the outcome), or X hears the "failed" tone and
is let go. X hanging up ends the addressee's call. Each outcome is told to `outcome()` (a
status: 200, the failure's, 487): REFER turns it into the transferer's NOTIFY.
"""

from __future__ import annotations

from enum import StrEnum

from mediasrv.call.api import (
    CallEvent,
    DigitReceived,
    Leg,
    LegAnswered,
    LegFailed,
    LegHungUp,
    PromptFinished,
)
from mediasrv.config import FailoverAction
from mediasrv.services.base import Service, Session
from mediasrv.services.digits import DigitCollector

FAILED_TONE_SECONDS = 2.0  # how long the "failed" tone plays before the next step


class State(StrEnum):
    COLLECTING = "COLLECTING"
    CALLING_TARGET = "CALLING_TARGET"
    HESITANT = "HESITANT"
    CONSULTING = "CONSULTING"
    DOUBLECHECKING = "DOUBLECHECKING"
    THREEWAY = "THREEWAY"
    ANNOUNCING = "ANNOUNCING"
    VOICEMAIL = "VOICEMAIL"
    TARGET_CALL = "TARGET_CALL"
    BLOND = "BLOND"
    RECALLING = "RECALLING"
    COMPLETE = "COMPLETE"
    REBRIDGE = "REBRIDGE"
    CONSULTATION_KEPT = "CONSULTATION_KEPT"
    FAIL = "FAIL"


class Ev(StrEnum):
    NUMBER_OK = "number_ok"
    NUMBER_BAD = "number_bad"
    NUMBER_BAD_LAST = "number_bad_last"
    ANSWERED = "answered"
    FAILED_RETURN = "failed_return"
    FAILED_ANNOUNCE = "failed_announce"
    FAILED_HANGUP = "failed_hangup"
    FAILED_VOICEMAIL = "failed_voicemail"
    ANNOUNCE_DONE = "announce_done"
    CANCEL = "cancel"
    SWAP = "swap"
    THREE_WAY = "three_way"
    TRANSFERER_HANGUP = "transferer_hangup"
    TRANSFERRED_HANGUP = "transferred_hangup"
    ADDRESSEE_HANGUP = "addressee_hangup"


FAILED_EVENT = {"return": Ev.FAILED_RETURN, "announce": Ev.FAILED_ANNOUNCE,
                "hangup": Ev.FAILED_HANGUP, "voicemail": Ev.FAILED_VOICEMAIL}
TERMINAL = frozenset({State.COMPLETE, State.REBRIDGE, State.CONSULTATION_KEPT})

Rows = dict[tuple[State, Ev], tuple[str, State | None]]


def sent_away(state: State) -> Rows:
    """The rows of `state` in which X rings the addressee on its own (see the module doc);
    `not_reached` returns FAIL, or REBRIDGE when T takes the call back."""
    events = [*FAILED_EVENT.values(), Ev.ADDRESSEE_HANGUP]
    return {(state, Ev.ANSWERED): ("complete", State.COMPLETE),
            **{(state, event): ("not_reached", None) for event in events},
            (state, Ev.TRANSFERRED_HANGUP): ("abandon", State.FAIL)}


# after a failover prompt or the "failed" tone, X is let go
LET_GO: Rows = {(State.FAIL, Ev.ANNOUNCE_DONE): ("drop_all", State.FAIL)}


def same(leg: Leg, other: Leg | None) -> bool:
    """Legs are compared by id: the call layer may hand out a new object for the same leg."""
    return other is not None and leg.id == other.id


class TransferSession(Session):
    """T, X and the addressee (A) of one transfer; subclasses give `TRANSITIONS`."""

    KIND = "transfer"
    TERMINAL = TERMINAL
    PURPOSE = "transfer"  # the dialled leg's purpose, in logs

    def __init__(self, service: Service, transferer: Leg, transferred: Leg) -> None:
        super().__init__(service, transferer, State.COLLECTING)
        self.transferer, self.transferred = transferer, transferred
        self.addressee: Leg | None = None
        self.number = ""
        self.attempts = 0
        self.failure: FailoverAction | None = None
        self.failover = True  # False: the addressee's failover does not run (direct media)
        self.failed_status = 0  # the addressee's final status when it failed
        self.moh_class = str(service.config.settings.get("behaviour", {}).get("moh_class", ""))
        self._announce_id: int | None = None
        self.collector = DigitCollector(
            self.control, transferer, on_done=self._number,
            timeout=float(service.setting("timers", "digit_timeout", 0.0)))

    def begin(self) -> None:
        """Owns T and X, holds X and asks T for the number."""
        self.own(self.transferer)
        self.own(self.transferred)
        self.control.hold(self.transferred, self.moh_class)
        self.collector.start("transfer")
        self.publish(event="start", previous="")

    @property
    def target(self) -> Leg:
        """The addressee, in the states where it has been dialled."""
        assert self.addressee is not None, f"no addressee in {self.state}"
        return self.addressee

    def describe(self) -> dict[str, object]:
        return {"transferer": self.transferer.number, "transferred": self.transferred.number,
                "addressee": self.addressee.number if self.addressee else self.number}

    def connected(self) -> list[Leg]:
        return [leg for leg in self.legs if self.alive(leg)]

    def stop(self) -> None:
        self.collector.cancel()

    def entered(self, previous: object) -> None:
        if self.state is not State.COLLECTING:
            self.collector.cancel()  # no number is wanted any more: its pause timer goes

    # ------------------------------------------------------------------ events in

    def handle(self, event: CallEvent) -> bool:
        """Turns a call event of an owned leg into a table event."""
        leg = event.leg
        if isinstance(event, DigitReceived):
            if not same(leg, self.transferer):
                return False  # the host passes it on: one service per call
            self.transferer_digit(event)
        elif isinstance(event, PromptFinished):
            self._prompt_finished(event.play_id)
        elif isinstance(event, LegAnswered) and same(leg, self.addressee):
            self.fire(Ev.ANSWERED)
        elif isinstance(event, LegFailed) and same(leg, self.addressee):
            self.gone(leg)
            self.failure = event.action if self.failover else None
            self.failed_status = event.status
            self.fire(FAILED_EVENT.get(event.action.action, Ev.FAILED_RETURN))
        elif isinstance(event, LegHungUp):
            self.gone(leg)
            self.fire(self._hangup_event(leg))
        return True

    def transferer_digit(self, event: DigitReceived) -> None:
        if self.state is State.COLLECTING:
            self.collector.feed(event.digit)

    def _prompt_finished(self, play_id: int) -> None:
        if self.collector.prompt_finished(play_id):
            return
        if play_id == self._announce_id:
            self._announce_id = None
            self.fire(Ev.ANNOUNCE_DONE)

    def _hangup_event(self, leg: Leg) -> Ev:
        if same(leg, self.transferer):
            return Ev.TRANSFERER_HANGUP
        if same(leg, self.transferred):
            return Ev.TRANSFERRED_HANGUP
        return Ev.ADDRESSEE_HANGUP

    def _number(self, number: str) -> None:
        self.number = number
        if self.valid(number):
            self.fire(Ev.NUMBER_OK)
            return
        self.attempts += 1
        limit = int(self.service.setting("timers", "dial_attempts"))
        self.fire(Ev.NUMBER_BAD_LAST if self.attempts >= limit else Ev.NUMBER_BAD)

    def valid(self, number: str) -> bool:
        """An extension that is neither the transferer nor the transferred party."""
        own = {leg.extension.number for leg in (self.transferer, self.transferred)
               if leg.extension is not None}
        return bool(number) and number in self.control.extensions() and number not in own

    # ------------------------------------------------------------------ shared actions

    def noop(self) -> None:
        """A row whose only effect is the change of state."""

    def retry(self) -> None:
        self.collector.start("invalid")

    def reconnect(self) -> None:
        """REBRIDGE: the consultation ends and T talks to X again (MoH stops)."""
        self.hang_up(self.addressee)
        self.control.bridge(self.transferer, self.transferred)

    def complete(self) -> None:
        """COMPLETE: X and the addressee talk to each other; T, if still there, goes."""
        self.control.bridge(self.transferred, self.target)
        self.outcome(200)
        self.hang_up(self.transferer)

    def drop_transferred(self) -> None:
        self.hang_up(self.transferred)

    def drop_addressee(self) -> None:
        self.hang_up(self.addressee)

    def drop_all(self) -> None:
        for leg in self.legs:
            self.hang_up(leg)

    def fail_over_transferer(self) -> None:
        """The addressee failed in a consultation: X waits on hold, T hears the outcome."""
        self.control.hold(self.transferred, self.moh_class)
        self.fail_over(self.transferer)

    # ------------------------------------------------------------------ sending X away

    def send_away(self) -> None:
        """The number is known: it is dialled for X (the addressee sees X as the caller),
        and X hears ringback while it rings."""
        self.addressee = self.dial_addressee()
        self.own(self.addressee)
        self.control.play_tone(self.transferred, "ringback")

    def dial_addressee(self) -> Leg:
        return self.control.dial(self.number, caller=self.transferred, purpose=self.PURPOSE)

    def not_reached(self) -> State:
        """The addressee failed (or hung up) while X rang it: its failover runs for X
        (announce, voicemail), else T gets the call back if still there (REBRIDGE), else X
        hears the "failed" tone; then X is let go (FAIL)."""
        self.outcome(self.failed_status)
        action = (self.failure or FailoverAction("return")).action
        if action in ("announce", "voicemail") or not self.alive(self.transferer):
            self.hang_up(self.transferer)
            self.fail_over(self.transferred)
            if action == "voicemail":  # X is the mailbox's now: the session lets it go
                self.gone(self.transferred)
            return State.FAIL
        self.control.bridge(self.transferer, self.transferred)
        return State.REBRIDGE

    def abandon(self) -> None:
        """X hung up while the addressee rang: its call ends, and T's if still there."""
        self.hang_up(self.addressee)
        self.outcome(487)
        self.hang_up(self.transferer)

    def outcome(self, status: int) -> None:
        """How sending X away ended (200, the addressee's failure status, 487); a REFER
        tells its transferer (refer_transfer.py)."""

    def transferer_alone(self) -> None:
        """X left while T was dialling: T hears the "failed" tone, then is hung up."""
        self.failure = None
        self.fail_over(self.transferer)

    def fail_over(self, leg: Leg) -> None:
        """Runs the addressee's failover action for `leg`: a prompt (announce), the
        addressee's mailbox (voicemail), or the "failed" tone (return, hangup). The end of
        the prompt or tone is ANNOUNCE_DONE."""
        action = self.failure or FailoverAction("return")
        if action.action == "voicemail":
            self.control.voicemail(leg, self.addressee.number if self.addressee else self.number)
        elif action.action == "announce":
            self._announce_id = self.control.play_prompt(leg, action.prompt or "unavailable")
        else:
            self.control.play_tone(leg, "failed")
            self.schedule(FAILED_TONE_SECONDS, lambda: self.fire(Ev.ANNOUNCE_DONE))
