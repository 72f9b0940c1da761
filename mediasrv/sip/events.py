"""Events the sans-I/O SIP endpoint reports to the call layer.

How this works: `SipEndpoint.next_events()` returns these small past-tense dataclasses in
the order things happened (the aioquic `quic/events.py` shape). They carry the transaction
object so the call layer can answer (`SipEndpoint.send_response(event.txn, ...)`) and the
dialog, when the message belonged to one (RFC 3261 §12). They hold no behaviour.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .dialog import Dialog
    from .transaction import ClientTransaction, ServerTransaction, Transaction


class SipEvent:
    """Base class of every endpoint event."""

    # Empty, so the subclasses' slots take effect: an endpoint makes several events per
    # message, and a slotted one is built and read without an instance __dict__.
    __slots__ = ()


@dataclass(slots=True)
class RequestReceived(SipEvent):
    """A new request created a server transaction; the TU must answer it (§8.2)."""

    txn: ServerTransaction
    request: Any
    dialog: Dialog | None = None


@dataclass(slots=True)
class ResponseReceived(SipEvent):
    """A client transaction passed a response up (§17.1); retransmissions are not reported."""

    txn: ClientTransaction
    response: Any
    dialog: Dialog | None = None


@dataclass(slots=True)
class AckReceived(SipEvent):
    """An ACK for a 2xx arrived: it is end-to-end, not part of any transaction (§13.3.1.4)."""

    request: Any
    dialog: Dialog | None = None


@dataclass(slots=True)
class CancelReceived(SipEvent):
    """A CANCEL matched a pending INVITE; the endpoint already answered 200 to the CANCEL
    and 487 to the INVITE (§9.2)."""

    invite_txn: ServerTransaction
    cancel: Any


@dataclass(slots=True)
class TransactionTimedOut(SipEvent):
    """Timer B, F or H fired: the peer never answered (or never ACKed) (§17)."""

    txn: Transaction


@dataclass(slots=True)
class TransportFailed(SipEvent):
    """The transport reported an error (e.g. the TCP connection closed) for a live
    transaction (§17.1.4, §17.2.4)."""

    txn: Transaction


@dataclass(slots=True)
class TransactionTerminated(SipEvent):
    """A transaction reached Terminated and was removed from the endpoint."""

    txn: Transaction


@dataclass(slots=True)
class AckTimedOut(SipEvent):
    """No ACK arrived for a 2xx to INVITE within 64*T1: the UAS should send BYE (§13.3.1.4)."""

    request: Any
    response: Any
    dialog: Dialog | None = None


@dataclass(slots=True)
class DialogTerminated(SipEvent):
    """A dialog ended (BYE, non-2xx final to its INVITE, or 481/408 in-dialog, §12.3)."""

    dialog: Dialog


@dataclass(slots=True)
class MalformedDropped(SipEvent):
    """A message could not be parsed and could not be answered, so it was dropped (§18)."""

    source: tuple[str, int]
    reason: str
