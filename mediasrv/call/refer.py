"""Transfers started by the phone's own transfer key: REFER (RFC 3515, RFC 5589), SIP side.

How this works:
- A REFER inside an answered call (the *transferer*'s leg) is checked first: exactly one
  Refer-To (RFC 3515 §2.4.1, else 400), a SIP URI (else 400/416), a call to transfer (the
  leg and its party answered and not in a service, else 603), a known extension for a blind
  transfer (else 404) other than the transferred party's own (else 403, as the transfer
  spec treats that addressee as invalid). Accepted, it gets 202 and an implicit
  subscription (RFC 3515 §2.4.4): NOTIFY `message/sipfrag` "100 Trying", then one final
  status, the last NOTIFY terminating the subscription. The subscription outlives the call:
  a phone that hangs up right after the 202 (many do, RFC 5589 §6) ended the invite usage of
  the dialog, not this one (RFC 5057), so it still gets the outcome. One that outlasts its
  60 s ends with the last status and `reason=timeout` (RFC 6665): never left hanging.
  `Refer-Sub: false` (RFC 4488 §4) is echoed in the 202 and no NOTIFY is sent.
- Attended (Refer-To carries `?Replaces=`, RFC 5589 §7, RFC 3891): the named dialog is one
  of ours (the transferer's consultation leg), so instead of letting an INVITE with Replaces
  go anywhere the two remote parties are joined here. RFC 3891 §3 answers (481, 603, 486)
  come back in the NOTIFY; a Replaces naming the REFER's own dialog gets 488. The named
  dialog is taken as the consultation's leg at the transferer's phone; naming the server's
  far-side dialog of it (towards the consulted party) means the same consultation.
- Early dialogs (the choice made here, as PBXes do): a REFER may name the transferer's
  consultation while it still rings. Unlike an INVITE (RFC 3891 §3 would answer 481) it is
  accepted: the blond transfer of RFC 5589 §7.3 / the transfer spec. The consultation gets
  487, the ringing leg now rings for the transferred party, and the transferer's NOTIFY
  carries the outcome: 200 when it answers, 486/480 when it is busy or not answered (the
  call is given back, or the transferred party hears the "failed" tone if the transferer
  left), 487 when the transferred party hangs up first. A caller still waiting on the
  transferer's ringing leg is answered here.
- Behind a proxy (`sip.outbound_proxy` set), a Replaces naming no dialog of ours names one
  another node holds (the phone's two calls landed on two nodes). Then this node does what
  RFC 5589 §7 asks of a transferee: the transferred party dials the Refer-To user with that
  Replaces, through the proxy, which routes it on the Replaces Call-ID to the node holding
  the dialog (deploy/kamailio/kamailio.cfg); that node joins it with the addressee.
- What to do with an accepted transfer is a service's business: the services are told
  `TransferRequested` (the built-in `services/refer_transfer.py` takes it) and report back
  with `progress()` (`CallControl.transfer_progress`), which becomes the NOTIFYs.
"""

from __future__ import annotations

from collections.abc import Callable

from mediasrv.call.api import CallAnswered, CallEvent, TransferRequested
from mediasrv.call.leg import SipLeg
from mediasrv.call.legs import Legs, party_of
from mediasrv.call.replaces import CHECKS, Match, ReplacesId, find
from mediasrv.media.engine import MediaError
from mediasrv.sip.errors import SipParseError
from mediasrv.sip.message import REASON_PHRASES, Request, make_response
from mediasrv.sip.transaction import ServerTransaction
from mediasrv.sip.uri import NameAddr, split_outside

SERVICE = "refer"
SUBSCRIPTION_EXPIRES = 60  # RFC 3515 §2.4.4: the implicit subscription's duration

# A REFER may name an early dialog we did not initiate (the addressee still rings): that is
# the blond transfer of the spec, so unlike an INVITE (RFC 3891 §3) it is not a 481.
REFER_CHECKS = {k: v for k, v in CHECKS.items() if k[0] is not Match.EARLY_THEIRS}


def sipfrag(status: int) -> bytes:
    """A `message/sipfrag` status line (RFC 3420) for a NOTIFY body."""
    return f"SIP/2.0 {status} {REASON_PHRASES.get(status, 'Unknown')}\r\n".encode()


class Subscription:
    """The implicit subscription a REFER creates (RFC 3515 §2.4.4-§2.4.6).

    It outlives the call it came with: the transferer's BYE ends the invite usage of the
    dialog, not this subscription usage (RFC 5057), so a phone that hangs up right after the
    202 still gets the outcome. It ends with the final status, or when it expires
    (`terminated;reason=timeout` with the last status, RFC 6665)."""

    def __init__(self, legs: Legs, leg: SipLeg, refer: Request, enabled: bool) -> None:
        self.legs, self.leg, self.enabled = legs, leg, enabled
        self.event = f"refer;id={refer.cseq[0]}"
        self.done = False
        self.last = 100
        self._expiry = legs.clock.call_later(SUBSCRIPTION_EXPIRES, self._expired) \
            if enabled else None

    def notify(self, status: int) -> None:
        """NOTIFY the sipfrag `status`; a final status (>= 200) ends the subscription."""
        if self.done:
            return
        self.last = status
        if status >= 200:
            self._end("terminated;reason=noresource")
        else:
            self._send(f"active;expires={SUBSCRIPTION_EXPIRES}")

    def _expired(self) -> None:
        self._expiry = None
        if not self.done:
            self._end("terminated;reason=timeout")

    def _end(self, state: str) -> None:
        self.done = True
        if self._expiry is not None:
            self._expiry.cancel()
            self._expiry = None
        self._send(state)

    def _send(self, state: str) -> None:
        if not self.enabled or self.leg.dialog is None:
            return
        request = self.leg.dialog.create_request("NOTIFY", body=sipfrag(self.last), headers=(
            ("Event", self.event), ("Subscription-State", state),
            ("Content-Type", "message/sipfrag;version=2.0")))
        self.legs.sip.send_request(request, self.leg.destination)


class ReferRequests:
    """Answers REFERs, tells the services what they ask for, NOTIFYs what they report."""

    def __init__(self, legs: Legs, tell: Callable[[CallEvent], bool],
                 is_direct: Callable[[SipLeg], bool]) -> None:
        self.legs = legs
        self._tell = tell
        self._is_direct = is_direct
        self._subs: dict[SipLeg, Subscription] = {}

    # ------------------------------------------------------------------ the REFER

    def on_refer(self, leg: SipLeg, txn: ServerTransaction, request: Request) -> None:
        """Answer an in-dialog REFER and hand the transfer it asks for to the services."""
        status, uri_or_reason = self._check(leg, request)
        if status:
            self.legs.respond(txn, make_response(request, status, uri_or_reason or None))
            return
        enabled = (request.headers.get("Refer-Sub") or "").strip().lower() != "false"
        headers = [("Contact", self.legs.contact(leg.destination))]
        if not enabled:
            headers.append(("Refer-Sub", "false"))
        self.legs.respond(txn, make_response(request, 202, headers=headers))
        self._forget_done()
        sub = self._subs[leg] = Subscription(self.legs, leg, request, enabled)
        sub.notify(100)
        transferred = party_of(self.legs, leg)
        assert transferred is not None
        failover = not self._is_direct(leg)
        replaces = _replaces_param(uri_or_reason)
        rid = ReplacesId.parse(replaces) if replaces is not None else None
        if rid is None:
            event = TransferRequested(leg, transferred, _user(uri_or_reason), failover=failover)
        elif self._elsewhere(rid, _user(uri_or_reason)):
            event = TransferRequested(leg, transferred, _user(uri_or_reason),
                                      failover=False, replaces=rid.header)
        else:
            found = self._attended(leg, transferred, rid)
            if found is None:
                return
            event = TransferRequested(leg, transferred, target=found[1], replaced=found[0],
                                      failover=failover)
        try:
            taken = self._tell(event)
        except MediaError:  # no media port left for the target's leg
            taken = False
        if not taken:
            self._give_back(leg, transferred, event.number)

    def _give_back(self, transferer: SipLeg, transferred: SipLeg, number: str) -> None:
        """The transfer could not start: 503, and the two talk again."""
        self.legs.publish(transferred, "transfer", service=SERVICE, state="FAIL",
                          phase="result", transferred=transferred.number,
                          transferer=transferer.number, target=number, status=503)
        self.progress(transferer, 503)
        self.legs.topology.bridge(transferer, transferred)
        self._tell(CallAnswered(transferer, transferred))

    def progress(self, leg: SipLeg, status: int) -> None:
        """A service's report on the transfer `leg` asked for: a NOTIFY sipfrag."""
        sub = self._subs.get(leg)
        if sub is not None:
            sub.notify(status)
        self._forget_done()

    def _check(self, leg: SipLeg, request: Request) -> tuple[int, str]:
        """(error status, reason) or (0, the Refer-To URI text)."""
        values = request.headers.get_all("Refer-To")
        if len(values) != 1 or len(split_outside(values[0], ",")) != 1:
            return 400, "Exactly one Refer-To is required"
        try:
            uri = NameAddr.parse(values[0]).uri
            replaces = _replaces_param(str(uri))
            if replaces is not None:
                ReplacesId.parse(replaces)
        except (SipParseError, ValueError) as exc:
            return getattr(exc, "status", 400) or 400, "Bad Refer-To"
        transferred = party_of(self.legs, leg)
        if (leg.owner or not leg.answered or transferred is None
                or not transferred.answered or transferred.owner):
            return 603, "Nothing to transfer now"
        if replaces is None and uri.user not in self.legs.config.extensions:
            return 404, ""
        if replaces is None and transferred.extension is not None \
                and uri.user == transferred.extension.number:
            return 403, "Cannot transfer a party to itself"  # it would ring the same phone
        return 0, str(uri)

    # ------------------------------------------------------------------ attended

    def _elsewhere(self, rid: ReplacesId, user: str) -> bool:
        """True when the dialog `rid` names is not ours but the proxy can find its node."""
        return (bool(user and self.legs.config.sip.outbound_proxy)
                and find(self.legs, rid)[0] is Match.NONE)

    def _attended(self, transferer: SipLeg, transferred: SipLeg,
                  rid: ReplacesId) -> tuple[SipLeg, SipLeg] | None:
        """(the replaced leg, the party to join) for a Replaces that names one of our
        dialogs; otherwise the RFC 3891 answer goes in the final NOTIFY and None."""
        match, replaced = find(self.legs, rid)
        if replaced is not None:
            replaced = _near_side(self.legs, replaced, transferer)
        status = REFER_CHECKS.get((match, rid.early_only))
        target = party_of(self.legs, replaced) if replaced is not None else None
        if status is None and replaced is transferer:
            status = 488
        elif status is None and (target is None or target.owner or target is transferred):
            status = 603
        if status is not None:
            self.legs.publish(transferred, "transfer", service=SERVICE, state="FAIL",
                              phase="result", transferred=transferred.number,
                              transferer=transferer.number, status=status)
            self.progress(transferer, status)
            return None
        assert replaced is not None and target is not None
        if target.answered or target.inbound:  # joined at once: the legs part from the call
            self.legs.answer(target)  # a caller waiting on the transferer's ringing leg
            for leg in (transferer, replaced):
                leg.dialing = leg.caller = leg.held_peer = None
        else:
            replaced.dialing = None  # blond: the ringing leg now rings for `transferred`
        return replaced, target

    def leak_report(self) -> int:
        """Subscriptions still waiting for their final NOTIFY (0 once every call settled)."""
        self._forget_done()
        return len(self._subs)

    def _forget_done(self) -> None:
        for leg in [leg for leg, sub in self._subs.items() if sub.done]:
            del self._subs[leg]


def _near_side(legs: Legs, named: SipLeg, transferer: SipLeg) -> SipLeg:
    """The leg of the named dialog's call that is at the transferer's phone: `named`, or its
    party when the Replaces named the far side (the server's own dialog with the consulted
    party, which the phone could only have learnt elsewhere): the same consultation."""
    party = party_of(legs, named)
    if party is not None and not _at_phone(named, transferer) and _at_phone(party, transferer):
        return party
    return named


def _at_phone(leg: SipLeg, phone: SipLeg) -> bool:
    """True when `leg` is a dialog with the same phone (its flow) as the leg `phone`."""
    return leg.destination == phone.destination or \
        any(fork.destination == phone.destination for fork in leg.forks)


def _replaces_param(uri: str) -> str | None:
    """The `Replaces` URI header of a Refer-To URI (RFC 3515 §2.1), still escaped."""
    _, q, headers = uri.partition("?")
    for part in headers.split("&") if q else []:
        name, _, value = part.partition("=")
        if name.lower() == "replaces":
            return value
    return None


def _user(uri: str) -> str:
    return NameAddr.parse(f"<{uri}>").uri.user or ""
