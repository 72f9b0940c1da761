"""Legs and calls: one SIP dialog plus one engine stream per leg (rtpengine's monologue).

How this works: a `SipLeg` is one side of the B2BUA. An inbound leg is the phone that sent us
an INVITE (we are its UAS); an outbound leg is a phone we INVITE (we are its UAC) — possibly
forked to several contacts of the extension, each a `Fork` with its own client transaction,
until the first 2xx wins. Each leg owns one media stream in the engine, opened when the leg
is created and closed when it ends; its SDP is built from that stream's port. A `Call` is
what the legs that were set up together (the caller's inbound leg and what it dialled) share:
the id used in logs (the caller's Call-ID). It holds no list of its legs (`Legs.of_call`
finds them): a leg -> call -> legs -> leg cycle would leave every call to the cycle collector.
The links between legs (`caller`/`dialing`, `held_peer`) are cycles too; `Legs.end` cuts them
once both ends ended, so an ended call dies by reference counting.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from enum import Enum

from mediasrv.call.api import Owner, Timer
from mediasrv.call.srtp_policy import LegSrtp
from mediasrv.config import Extension
from mediasrv.logs import CallLogger
from mediasrv.sip.dialog import Dialog
from mediasrv.sip.endpoint import Destination
from mediasrv.sip.message import Request
from mediasrv.sip.sdp import Negotiated, SessionDescription
from mediasrv.sip.transaction import ClientTransaction, ServerTransaction

_leg_ids = itertools.count(1)


class LegState(Enum):
    CALLING = "calling"  # INVITE sent or received, no provisional yet
    RINGING = "ringing"  # 180/183 seen or sent
    ANSWERED = "answered"
    ENDED = "ended"


@dataclass(eq=False)
class Fork:
    """One INVITE client transaction towards one contact of the dialled extension."""

    txn: ClientTransaction
    request: Request
    destination: Destination
    dialog: Dialog | None = None
    done: bool = False


@dataclass(eq=False, slots=True)
class Call:
    id: str
    log: CallLogger | None = None  # its log lines' adapter, made at the first (Legs.log)


@dataclass(eq=False)
class SipLeg:
    """One party: implements `mediasrv.call.api.Leg` for services."""

    call: Call
    inbound: bool
    stream: int
    number: str
    extension: Extension | None
    destination: Destination  # where in-dialog requests go (the phone's flow)
    id: str = field(default_factory=lambda: f"leg{next(_leg_ids)}")
    state: LegState = LegState.CALLING
    dialog: Dialog | None = None
    invite_txn: ServerTransaction | None = None  # inbound: the INVITE to answer
    invite: Request | None = None  # inbound: the INVITE; outbound: the first fork's
    offer: SessionDescription | None = None  # inbound, until answered: the INVITE's SDP
    forks: list[Fork] = field(default_factory=list)
    media: Negotiated | None = None
    session_id: int = 0
    sdp_version: int = 0
    remote_hold: bool = False
    owner: Owner | None = None  # the one record of who took the leg over (a session)
    purpose: str = "call"
    hops: int = 0  # forward hops followed to reach this leg's extension
    ring_timer: Timer | None = None
    tag: str = ""  # inbound: our To tag towards the caller
    caller: SipLeg | None = None  # outbound: the leg it was dialled for
    dialing: SipLeg | None = None  # inbound: the leg an ordinary call dialled
    last_status: int = 0  # outbound: the most telling failure of its forks
    held_peer: SipLeg | None = None  # the peer this phone put on hold
    srtp: LegSrtp | None = None  # SDES keys of this leg (srtp_policy.py); None: never offered
    replaces: str = ""  # outbound: the Replaces its INVITE carries (a dialog on another node)

    @property
    def call_id(self) -> str:
        return self.call.id

    @property
    def language(self) -> str:
        return self.extension.language if self.extension else "en"

    @property
    def answered(self) -> bool:
        return self.state is LegState.ANSWERED

    @property
    def ended(self) -> bool:
        return self.state is LegState.ENDED

    def __repr__(self) -> str:
        return f"<{self.id} {self.number} {'in' if self.inbound else 'out'} {self.state.value}>"
