"""Blind transfer: `#1`, dial a number, the transferred party is sent there.

How this works: the second service on the plugin contract (plugins/blind_transfer.toml). The
dialling phase is attended transfer's (transfer.py): X is held, T hears the `transfer` prompt
and dials; a bad number gets the `invalid` prompt and another try, up to `dial_attempts`, then T
and X are reconnected. A good number is dialled on X's behalf (the addressee sees X as the
caller) and T is hung up at once; X hears ringback until the addressee answers (COMPLETE). If
the addressee does not answer, the addressee's failover runs for X (forward is followed by the
call layer; announce / voicemail / the "failed" tone for return and hangup, then X is hung up).
This is what RFC 5589 §6 calls a basic transfer, done inside the server instead of by REFER;
the part after the number is known is the one REFER uses too (`sent_away` in transfer.py).
"""

from __future__ import annotations

from mediasrv.call.api import Leg
from mediasrv.services.base import Service
from mediasrv.services.registry import register_service
from mediasrv.services.transfer import LET_GO, Ev, Rows, State, TransferSession, sent_away

S, E = State, Ev

TRANSITIONS: Rows = {
    (S.COLLECTING, E.NUMBER_OK): ("send_away", S.CALLING_TARGET),
    (S.COLLECTING, E.NUMBER_BAD): ("retry", S.COLLECTING),
    (S.COLLECTING, E.NUMBER_BAD_LAST): ("reconnect", S.REBRIDGE),
    (S.COLLECTING, E.TRANSFERER_HANGUP): ("drop_transferred", S.FAIL),
    (S.COLLECTING, E.TRANSFERRED_HANGUP): ("transferer_alone", S.FAIL),
    **sent_away(S.CALLING_TARGET),
    **LET_GO,
}


class BlindTransferSession(TransferSession):
    """One blind transfer; the table is `TRANSITIONS`."""

    TRANSITIONS = TRANSITIONS
    PURPOSE = "blind transfer"

    def send_away(self) -> None:
        """Dials the addressee for X (ringback) and lets T go at once."""
        super().send_away()
        self.hang_up(self.transferer)


class BlindTransfer(Service):
    """The `blind_transfer` plugin (plugins/blind_transfer.toml)."""

    name = "blind_transfer"

    def start(self, leg: Leg, peer: Leg) -> bool:
        BlindTransferSession(self, leg, peer).begin()
        return True


register_service(BlindTransfer.name, BlindTransfer)
