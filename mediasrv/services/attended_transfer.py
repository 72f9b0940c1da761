"""Attended transfer with three-way conference (shared/specs/attended-transfer.md).

How this works: the transferer (T) dials `#4` during a call with the transferred party (X).
X is held and T dials the addressee (A) — the dialling phase is shared with blind transfer
(transfer.py). While A rings T hears ringback; T's in-session codes (`*0` cancel, `*9` swap,
`*3` three-way, from the plugin file) are matched by a `CodeMatcher`, and T's other digits go
to whoever T is talking to. Every row of the spec is one row of `TRANSITIONS`, keyed by
(state, event) and giving the action and the next state (RFC 5589 names the roles; the states
follow Asterisk's main/bridge_basic.c as the spec asks).

Who hears whom in each state:

| state | T hears | X hears | A |
|---|---|---|---|
| COLLECTING | prompt, then silence | MoH | — |
| CALLING_TARGET | ringback | MoH | rings |
| HESITANT | X | T | rings |
| CONSULTING | A | MoH | hears T |
| DOUBLECHECKING | X | T | MoH |
| THREEWAY | X + A | T + A | T + X |
| ANNOUNCING | prompt or "failed" tone | MoH | failed |
| VOICEMAIL | A's mailbox greeting, records | MoH | failed |
| BLOND | (left) | ringback | rings |

Choices where the spec is silent (also in services/README.md): `*3` while A still rings is
ignored (there is no one to conference yet); `*9` in THREEWAY goes back to CONSULTING with X
held; T hanging up while dialling or hearing a failover ends the call for X; X hanging up while
T dials or hears a failover leaves T the "failed" tone, or the prompt/mailbox it already hears,
then T is hung up; while A's voicemail records only `*0` works.
"""

from __future__ import annotations

from mediasrv.call.api import DigitReceived, Leg
from mediasrv.services.base import Service
from mediasrv.services.codes import CodeMatcher
from mediasrv.services.registry import register_service
from mediasrv.services.transfer import LET_GO, Ev, State, TransferSession, sent_away

S, E = State, Ev

_RINGING_ROWS = {
    E.CANCEL: ("reconnect", S.REBRIDGE),
    E.FAILED_RETURN: ("reconnect", S.REBRIDGE),
    E.FAILED_ANNOUNCE: ("fail_over_transferer", S.ANNOUNCING),
    E.FAILED_HANGUP: ("fail_over_transferer", S.ANNOUNCING),
    E.FAILED_VOICEMAIL: ("fail_over_transferer", S.VOICEMAIL),
    E.ADDRESSEE_HANGUP: ("reconnect", S.REBRIDGE),
    E.TRANSFERER_HANGUP: ("blond", None),  # per `blond`: BLOND, RECALLING or FAIL
}
_ANSWERED_ROWS = {
    E.THREE_WAY: ("conference", S.THREEWAY),
    E.CANCEL: ("reconnect", S.REBRIDGE),
    E.ADDRESSEE_HANGUP: ("reconnect", S.REBRIDGE),
    E.TRANSFERER_HANGUP: ("complete", S.COMPLETE),
    E.TRANSFERRED_HANGUP: ("keep_consultation", S.CONSULTATION_KEPT),
}


def _rows(state: State, rows: dict[Ev, tuple[str, State | None]]
          ) -> dict[tuple[State, Ev], tuple[str, State | None]]:
    return {(state, event): row for event, row in rows.items()}


TRANSITIONS: dict[tuple[State, Ev], tuple[str, State | None]] = {
    (S.COLLECTING, E.NUMBER_OK): ("call_addressee", S.CALLING_TARGET),
    (S.COLLECTING, E.NUMBER_BAD): ("retry", S.COLLECTING),
    (S.COLLECTING, E.NUMBER_BAD_LAST): ("reconnect", S.REBRIDGE),
    (S.COLLECTING, E.TRANSFERER_HANGUP): ("drop_transferred", S.FAIL),
    (S.COLLECTING, E.TRANSFERRED_HANGUP): ("transferer_alone", S.FAIL),

    **_rows(S.CALLING_TARGET, _RINGING_ROWS),
    (S.CALLING_TARGET, E.ANSWERED): ("consult", S.CONSULTING),
    (S.CALLING_TARGET, E.SWAP): ("talk_to_transferred", S.HESITANT),
    (S.CALLING_TARGET, E.TRANSFERRED_HANGUP): ("noop", S.TARGET_CALL),

    **_rows(S.HESITANT, _RINGING_ROWS),
    (S.HESITANT, E.ANSWERED): ("hold_addressee", S.DOUBLECHECKING),
    (S.HESITANT, E.SWAP): ("back_to_ringback", S.CALLING_TARGET),
    (S.HESITANT, E.TRANSFERRED_HANGUP): ("ringback", S.TARGET_CALL),

    **_rows(S.CONSULTING, _ANSWERED_ROWS),
    (S.CONSULTING, E.SWAP): ("doublecheck", S.DOUBLECHECKING),

    **_rows(S.DOUBLECHECKING, _ANSWERED_ROWS),
    (S.DOUBLECHECKING, E.SWAP): ("consult", S.CONSULTING),

    **_rows(S.THREEWAY, _ANSWERED_ROWS),
    (S.THREEWAY, E.SWAP): ("consult", S.CONSULTING),

    (S.ANNOUNCING, E.ANNOUNCE_DONE): ("reconnect", S.REBRIDGE),
    (S.ANNOUNCING, E.CANCEL): ("reconnect", S.REBRIDGE),
    (S.ANNOUNCING, E.TRANSFERER_HANGUP): ("drop_transferred", S.FAIL),
    (S.ANNOUNCING, E.TRANSFERRED_HANGUP): ("noop", S.FAIL),

    (S.VOICEMAIL, E.CANCEL): ("reconnect", S.REBRIDGE),
    (S.VOICEMAIL, E.TRANSFERER_HANGUP): ("drop_transferred", S.FAIL),
    (S.VOICEMAIL, E.TRANSFERRED_HANGUP): ("noop", S.FAIL),

    (S.TARGET_CALL, E.ANSWERED): ("keep_consultation", S.CONSULTATION_KEPT),
    (S.TARGET_CALL, E.CANCEL): ("abandon_target", S.FAIL),
    (S.TARGET_CALL, E.FAILED_RETURN): ("fail_over_transferer", S.FAIL),
    (S.TARGET_CALL, E.FAILED_ANNOUNCE): ("fail_over_transferer", S.FAIL),
    (S.TARGET_CALL, E.FAILED_HANGUP): ("fail_over_transferer", S.FAIL),
    (S.TARGET_CALL, E.FAILED_VOICEMAIL): ("fail_over_transferer", S.FAIL),
    (S.TARGET_CALL, E.ADDRESSEE_HANGUP): ("fail_over_transferer", S.FAIL),
    (S.TARGET_CALL, E.TRANSFERER_HANGUP): ("drop_addressee", S.FAIL),

    # T left while A rang: X is sent to A (blond), or to T's phone again (recall)
    **sent_away(S.BLOND),
    **sent_away(S.RECALLING),
    (S.RECALLING, E.ANSWERED): ("complete", S.REBRIDGE),
    **LET_GO,
}

# In these states T's digits go to the parties T hears (see the table in the module doc).
_PARTNERS = {S.HESITANT: ("transferred",), S.DOUBLECHECKING: ("transferred",),
             S.CONSULTING: ("addressee",), S.THREEWAY: ("transferred", "addressee")}


class AttendedTransferSession(TransferSession):
    """One attended transfer; the table is `TRANSITIONS`."""

    TRANSITIONS = TRANSITIONS

    def __init__(self, service: Service, transferer: Leg, transferred: Leg) -> None:
        super().__init__(service, transferer, transferred)
        codes = {service.codes[name]: event for name, event in
                 (("cancel", E.CANCEL), ("swap", E.SWAP), ("three_way", E.THREE_WAY))}
        self.matcher = CodeMatcher(
            self.control, transferer, codes, on_code=self.fire, forward=self._to_partners,
            timeout=float(service.setting("timers", "feature_digit_timeout")))

    def transferer_digit(self, event: DigitReceived) -> None:
        if self.state is S.COLLECTING:
            self.collector.feed(event.digit)
        else:
            self.matcher.feed(event.digit, event.source)

    def stop(self) -> None:
        super().stop()
        self.matcher.cancel()

    def _to_partners(self, digits: str) -> None:
        for role in _PARTNERS.get(self.state, ()):
            leg = getattr(self, role)
            if self.alive(leg):
                self.control.send_dtmf(leg, digits)

    # ------------------------------------------------------------------ actions

    def call_addressee(self) -> None:
        self.addressee = self.control.dial(self.number, caller=self.transferer,
                                           purpose="attended transfer")
        self.own(self.addressee)
        self.ringback()

    def ringback(self) -> None:
        self.control.play_tone(self.transferer, "ringback")

    def consult(self) -> None:
        """T talks to A; X is held."""
        self.control.hold(self.transferred, self.moh_class)
        self.control.bridge(self.transferer, self.target)

    def talk_to_transferred(self) -> None:
        """HESITANT: T talks to X while A still rings (heard by no one)."""
        self.control.bridge(self.transferer, self.transferred)

    def back_to_ringback(self) -> None:
        self.control.hold(self.transferred, self.moh_class)
        self.ringback()

    def hold_addressee(self) -> None:
        """A answered while T talks to X: A waits on hold (DOUBLECHECKING)."""
        self.control.hold(self.target, self.moh_class)

    def doublecheck(self) -> None:
        self.hold_addressee()
        self.control.bridge(self.transferer, self.transferred)

    def conference(self) -> None:
        self.control.mix([self.transferer, self.transferred, self.target])

    def keep_consultation(self) -> None:
        """X left: T and A stay connected as a normal call."""
        self.control.bridge(self.transferer, self.target)

    def abandon_target(self) -> None:
        """`*0` when X has left and A still rings: nothing to go back to."""
        self.drop_addressee()
        self.transferer_alone()

    def blond(self) -> State:
        """T hung up while A rings: the `blond` setting decides (spec, "Decisions")."""
        mode = self.service.setting("behaviour", "blond")
        if mode == "complete":
            self.control.play_tone(self.transferred, "ringback")
            return S.BLOND
        self.drop_addressee()
        if mode == "recall" and self.transferer.extension is not None:
            self.addressee = self.control.dial(self.transferer.extension.number,
                                               caller=self.transferred, purpose="transfer recall")
            self.own(self.addressee)
            self.control.play_tone(self.transferred, "ringback")
            return S.RECALLING
        self.drop_transferred()
        return S.FAIL


class AttendedTransfer(Service):
    """The `attended_transfer` plugin (plugins/attended_transfer.toml)."""

    name = "attended_transfer"

    def start(self, leg: Leg, peer: Leg) -> bool:
        AttendedTransferSession(self, leg, peer).begin()
        return True


register_service(AttendedTransfer.name, AttendedTransfer)
