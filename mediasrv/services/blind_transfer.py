"""Blind transfer: `#1`, dial a number, the transferred party is sent there.

How this works: the second service on the plugin contract (plugins/blind_transfer.toml). The
dialling phase is attended transfer's (transfer.py): X is held, T hears the `transfer` prompt
and dials; a bad number gets the `invalid` prompt and another try, up to `dial_attempts`, then T
and X are reconnected. A good number is dialled on X's behalf (the addressee sees X as the
caller) and T is hung up at once; X hears ringback until the addressee answers (COMPLETE). If
the addressee does not answer, the addressee's failover runs for X (forward is followed by the
call layer; announce / voicemail / the "failed" tone for return and hangup, then X is hung up).
This is what RFC 5589 §6 calls a basic transfer, done inside the server instead of by REFER.
"""

from __future__ import annotations

from mediasrv.call.api import Leg
from mediasrv.services.base import Service
from mediasrv.services.registry import register_service
from mediasrv.services.transfer import Ev, State, TransferSession

S, E = State, Ev

TRANSITIONS: dict[tuple[State, Ev], tuple[str, State | None]] = {
    (S.COLLECTING, E.NUMBER_OK): ("send_away", S.CALLING_TARGET),
    (S.COLLECTING, E.NUMBER_BAD): ("retry", S.COLLECTING),
    (S.COLLECTING, E.NUMBER_BAD_LAST): ("reconnect", S.REBRIDGE),
    (S.COLLECTING, E.TRANSFERER_HANGUP): ("drop_transferred", S.FAIL),
    (S.COLLECTING, E.TRANSFERRED_HANGUP): ("transferer_alone", S.FAIL),

    (S.CALLING_TARGET, E.ANSWERED): ("complete", S.COMPLETE),
    (S.CALLING_TARGET, E.FAILED_RETURN): ("fail_over_transferred", S.FAIL),
    (S.CALLING_TARGET, E.FAILED_ANNOUNCE): ("fail_over_transferred", S.FAIL),
    (S.CALLING_TARGET, E.FAILED_HANGUP): ("fail_over_transferred", S.FAIL),
    (S.CALLING_TARGET, E.FAILED_VOICEMAIL): ("fail_over_transferred", S.FAIL),
    (S.CALLING_TARGET, E.ADDRESSEE_HANGUP): ("fail_over_transferred", S.FAIL),
    (S.CALLING_TARGET, E.TRANSFERRED_HANGUP): ("drop_addressee", S.FAIL),

    (S.FAIL, E.ANNOUNCE_DONE): ("drop_all", S.FAIL),
}


class BlindTransferSession(TransferSession):
    """One blind transfer; the table is `TRANSITIONS`."""

    TRANSITIONS = TRANSITIONS

    def send_away(self) -> None:
        """Dials the addressee for X, lets T go, and gives X ringback."""
        self.addressee = self.control.dial(self.number, caller=self.transferred,
                                           purpose="blind transfer")
        self.own(self.addressee)
        self.hang_up(self.transferer)
        self.control.play_tone(self.transferred, "ringback")


class BlindTransfer(Service):
    """The `blind_transfer` plugin (plugins/blind_transfer.toml)."""

    name = "blind_transfer"

    def start(self, leg: Leg, peer: Leg) -> bool:
        BlindTransferSession(self, leg, peer).begin()
        return True


register_service(BlindTransfer.name, BlindTransfer)
