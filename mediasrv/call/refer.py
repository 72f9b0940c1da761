"""Transfers started by the phone's own transfer key: REFER (RFC 3515, RFC 5589).

How this works:
- A REFER inside an answered call (the *transferer*'s leg) is checked first: exactly one
  Refer-To (RFC 3515 §2.4.1, else 400), a SIP URI (else 400/416), a call to transfer (the
  leg and its party answered and not in a service, else 603), a known extension for a blind
  transfer (else 404) other than the transferred party's own (else 403, as the transfer
  spec treats that addressee as invalid). Accepted, it gets 202 and an implicit
  subscription (RFC 3515 §2.4.4): NOTIFY `message/sipfrag` "100 Trying", then one final
  status (200 / 486 / 480 / 503, or the RFC 3891 answer for a bad Replaces), the last
  NOTIFY terminating the subscription.
  `Refer-Sub: false` (RFC 4488 §4) is echoed in the 202 and no NOTIFY is sent.
- Blind (no Replaces, RFC 5589 §6): the *transferred* party hears ringback while the
  Refer-To extension is dialled on its behalf (its failover applies, unless the call had
  direct media: then no forward, and failure reconnects or hangs up). The state table is
  `TRANSITIONS`, states named as in the transfer spec (CALLING_TARGET, BLOND, COMPLETE,
  FAIL). On the final outcome the transferer's leg is released (BYE); a failed transfer
  with the transferer still there reconnects the two instead (RFC 5589 §6 retrieves the
  call). The transferer may BYE at any time after the 202 (RFC 5589 §6 says it usually
  does): the transfer goes on without it.
- Attended (Refer-To carries `?Replaces=`, RFC 5589 §7, RFC 3891): the named dialog is one
  of ours (the transferer's consultation leg), so instead of letting an INVITE with
  Replaces go anywhere we join the two remote parties locally. The named leg's party
  answered: bridge it with the transferred party, NOTIFY 200, release both transferer legs.
  Its party still rings (an outbound leg): a *blond* transfer, the ringing leg now rings for
  the transferred party (state BLOND). RFC 3891 §3 answers (481, 603, 486) come back in
  the NOTIFY; a Replaces naming the REFER's own dialog gets 488.
- Every step is published as a "transfer" event with `service="refer"` (start, progress,
  result), like those of the DTMF-driven transfer services.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Protocol

from mediasrv.call.api import (
    CallAnswered,
    CallEvent,
    LegAnswered,
    LegFailed,
    LegHungUp,
    LegRinging,
)
from mediasrv.call.failover import CONDITION_STATUS, MAX_HOPS
from mediasrv.call.leg import SipLeg
from mediasrv.call.legs import Legs, party_of
from mediasrv.call.replaces import CHECKS, Match, ReplacesId, find
from mediasrv.config import FailoverAction
from mediasrv.media.engine import MediaError
from mediasrv.sip.errors import SipParseError
from mediasrv.sip.message import REASON_PHRASES, Request, make_response
from mediasrv.sip.transaction import ServerTransaction
from mediasrv.sip.uri import NameAddr, split_outside

OWNER = "refer"
FAILED_TONE_SECONDS = 2.0  # the "failed" tone a transferred party hears before it is let go
SUBSCRIPTION_EXPIRES = 60  # RFC 3515 §2.4.4: the implicit subscription's duration

# A REFER may name an early dialog we did not initiate (the addressee still rings): that is
# the blond transfer of the spec, so unlike an INVITE (RFC 3891 §3) it is not a 481.
REFER_CHECKS = {k: v for k, v in CHECKS.items() if k[0] is not Match.EARLY_THEIRS}


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


def sipfrag(status: int) -> bytes:
    """A `message/sipfrag` status line (RFC 3420) for a NOTIFY body."""
    return f"SIP/2.0 {status} {REASON_PHRASES.get(status, 'Unknown')}\r\n".encode()


class Calls(Protocol):
    """What a REFER transfer asks of the B2BUA beyond the leg table."""

    listener: Callable[[CallEvent], bool]

    def dial(self, number: str, *, caller: SipLeg, purpose: str) -> SipLeg: ...
    def voicemail(self, leg: SipLeg, mailbox: str) -> None: ...


class Subscription:
    """The implicit subscription a REFER creates (RFC 3515 §2.4.4-§2.4.6)."""

    def __init__(self, legs: Legs, leg: SipLeg, refer: Request, enabled: bool) -> None:
        self.legs, self.leg, self.enabled = legs, leg, enabled
        self.event = f"refer;id={refer.cseq[0]}"
        self.done = False

    def notify(self, status: int) -> None:
        """NOTIFY the sipfrag `status`; a final status (>= 200) ends the subscription."""
        if not self.enabled or self.done or self.leg.ended or self.leg.dialog is None:
            return
        final = status >= 200
        self.done = final
        state = "terminated;reason=noresource" if final else \
            f"active;expires={SUBSCRIPTION_EXPIRES}"
        request = self.leg.dialog.create_request("NOTIFY", body=sipfrag(status), headers=(
            ("Event", self.event), ("Subscription-State", state),
            ("Content-Type", "message/sipfrag;version=2.0")))
        self.legs.sip.send_request(request, self.leg.destination)


@dataclass(eq=False)
class ReferSession:
    """One blind or blond transfer in progress; its table is `TRANSITIONS`."""

    transferer: SipLeg
    transferred: SipLeg
    target: SipLeg
    sub: Subscription
    state: State
    failover: bool = True
    action: FailoverAction = field(default_factory=lambda: FailoverAction("return"))
    status: int = 0


class ReferTransfers:
    """REFER handling for the B2BUA; it owns (`leg.owner == "refer"`) the legs it moves."""

    def __init__(self, legs: Legs, calls: Calls, is_direct: Callable[[SipLeg], bool]) -> None:
        self.legs = legs
        self.calls = calls
        self._is_direct = is_direct
        self._sessions: dict[SipLeg, ReferSession] = {}

    # ------------------------------------------------------------------ the REFER

    def on_refer(self, leg: SipLeg, txn: ServerTransaction, request: Request) -> None:
        """Answer an in-dialog REFER and start the transfer it asks for."""
        status, uri_or_reason = self._check(leg, request)
        if status:
            self.legs.respond(txn, make_response(request, status, uri_or_reason or None))
            return
        enabled = (request.headers.get("Refer-Sub") or "").strip().lower() != "false"
        headers = [("Contact", self.legs.contact(leg.destination))]
        if not enabled:
            headers.append(("Refer-Sub", "false"))
        self.legs.respond(txn, make_response(request, 202, headers=headers))
        sub = Subscription(self.legs, leg, request, enabled)
        sub.notify(100)
        transferred = party_of(self.legs, leg)
        assert transferred is not None
        replaces = _replaces_param(uri_or_reason)
        if replaces is None:
            self._blind(leg, transferred, _user(uri_or_reason), sub)
        else:
            self._attended(leg, transferred, ReplacesId.parse(replaces), sub)

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
        if (leg in self._sessions or leg.owner or not leg.answered or transferred is None
                or not transferred.answered or transferred.owner):
            return 603, "Nothing to transfer now"
        if replaces is None and uri.user not in self.legs.config.extensions:
            return 404, ""
        if replaces is None and transferred.extension is not None \
                and uri.user == transferred.extension.number:
            return 403, "Cannot transfer a party to itself"  # it would ring the same phone
        return 0, str(uri)

    # ------------------------------------------------------------------ blind / blond

    def _blind(self, transferer: SipLeg, transferred: SipLeg, number: str,
               sub: Subscription) -> None:
        failover = not self._direct(transferer)
        self._take(transferer, transferred)
        try:
            target = self.calls.dial(number, caller=transferred, purpose=OWNER)
        except MediaError:
            self._publish(transferred, "FAIL", "result", transferer=transferer.number,
                          target=number, status=503)
            sub.notify(503)
            self._reconnect_or_release(transferer, transferred)
            return
        if not failover:
            target.hops = MAX_HOPS  # failover does not run: no forward hop is left
        session = ReferSession(transferer, transferred, target, sub, S.CALLING_TARGET, failover)
        self._start(session)

    def _blond(self, transferer: SipLeg, transferred: SipLeg, replaced: SipLeg,
               target: SipLeg, sub: Subscription) -> None:
        failover = not self._direct(transferer)
        self._take(transferer, transferred)
        target.owner, target.purpose, target.caller = OWNER, OWNER, transferred
        replaced.dialing = None
        self.legs.hangup(replaced, 487)  # the transferer's own consultation call ends here
        session = ReferSession(transferer, transferred, target, sub, S.BLOND, failover)
        self._start(session)

    def _take(self, transferer: SipLeg, transferred: SipLeg) -> None:
        transferer.owner = transferred.owner = OWNER
        self.legs.topology.silence(transferer)
        self.legs.topology.tone(transferred, "ringback")

    def _start(self, session: ReferSession) -> None:
        for leg in (session.transferer, session.transferred, session.target):
            self._sessions[leg] = session
        self._publish(session.transferred, str(session.state), "start",
                      **self._describe(session))

    # ------------------------------------------------------------------ attended

    def _attended(self, transferer: SipLeg, transferred: SipLeg, rid: ReplacesId,
                  sub: Subscription) -> None:
        match, replaced = find(self.legs, rid)
        status = REFER_CHECKS.get((match, rid.early_only))
        target = party_of(self.legs, replaced) if replaced is not None else None
        if status is None and replaced is transferer:
            status = 488
        elif status is None and (target is None or target.owner or target is transferred):
            status = 603
        if status is not None:
            self._publish(transferred, "FAIL", "result", transferer=transferer.number,
                          status=status)
            sub.notify(status)
            return
        assert replaced is not None and target is not None
        if not target.answered and not target.inbound:
            self._blond(transferer, transferred, replaced, target, sub)
            return
        self._join(transferer, transferred, replaced, target, sub)

    def _join(self, transferer: SipLeg, transferred: SipLeg, replaced: SipLeg,
              target: SipLeg, sub: Subscription) -> None:
        legs = self.legs
        fields = {"transferer": transferer.number, "target": target.number}
        self._publish(transferred, "COMPLETE", "start", **fields)
        if not target.answered:
            legs.answer(target)  # a caller waiting on the transferer's ringing leg
        for leg in (transferer, replaced):
            leg.dialing = leg.caller = leg.held_peer = None
        self._connect(transferred, target)
        sub.notify(200)
        legs.hangup(replaced)
        legs.hangup(transferer)
        self._publish(transferred, "COMPLETE", "result", status=200, **fields)

    # ------------------------------------------------------------------ events

    def handle(self, event: CallEvent) -> bool:
        """Events of the legs a transfer owns; True when one was used."""
        session = self._sessions.get(event.leg)  # type: ignore[call-overload]
        if session is None:
            return False
        leg = event.leg
        if isinstance(event, LegHungUp) and leg is session.transferer:
            return True  # the transferer may leave right after the 202 (RFC 5589 §6)
        if isinstance(event, LegRinging) and leg is session.target:
            self._publish(session.transferred, str(session.state), "progress",
                          progress="ringing", **self._describe(session))
        elif isinstance(event, LegAnswered) and leg is session.target:
            self._fire(session, E.ANSWERED)
        elif isinstance(event, LegFailed) and leg is session.target:
            session.action, session.status = event.action, event.status
            self._fire(session, E.FAILED)
        elif isinstance(event, LegHungUp):
            self._fire(session, E.TARGET_HANGUP if leg is session.target
                       else E.TRANSFERRED_HANGUP)
        return True

    def _fire(self, session: ReferSession, event: Ev) -> None:
        row = TRANSITIONS.get((session.state, event))
        if row is None:
            return
        action, session.state = row
        for leg in (session.transferer, session.transferred, session.target):
            self._sessions.pop(leg, None)
        getattr(self, action)(session)
        self._publish(session.transferred, str(session.state), "result", event=str(event),
                      status=session.status, **self._describe(session))

    def complete(self, session: ReferSession) -> None:
        """The target answered: it talks to the transferred party; the transferer goes."""
        session.status = 200
        self._connect(session.transferred, session.target)
        session.sub.notify(200)
        self._release(session.transferer)

    def fail(self, session: ReferSession) -> None:
        """The target did not answer: its failover runs for the transferred party, or the
        transferer gets the call back."""
        condition = "busy" if session.status in (486, 600) else "no_answer"
        session.status = CONDITION_STATUS[condition][0]
        session.sub.notify(session.status)
        transferer, transferred = session.transferer, session.transferred
        action = session.action.action if session.failover else "return"
        if action in ("announce", "voicemail") and not transferred.ended:
            self._carry_out(transferred, session.action, session.target.number)
            self._release(transferer)
        else:
            self._reconnect_or_release(transferer, transferred)

    def abandon(self, session: ReferSession) -> None:
        """The transferred party hung up while the target rang."""
        session.status = 487
        self.legs.hangup(session.target)
        session.sub.notify(487)
        self._release(session.transferer)

    # ------------------------------------------------------------------ outcomes

    def _connect(self, a: SipLeg, b: SipLeg) -> None:
        """Leaves `a` and `b` an ordinary two-party call (services may act on it again)."""
        for leg in (a, b):
            leg.owner, leg.held_peer = "", None
        b.purpose, b.caller = "call", a
        self.legs.topology.bridge(a, b)
        self.calls.listener(CallAnswered(a, b))

    def _carry_out(self, leg: SipLeg, action: FailoverAction, mailbox: str) -> None:
        leg.owner = ""
        if action.action == "announce":
            self.legs.play_prompt(leg, action.prompt or "unavailable",
                                  then=lambda: self.legs.hangup(leg))
        else:
            self.calls.voicemail(leg, mailbox)

    def _reconnect_or_release(self, transferer: SipLeg, transferred: SipLeg) -> None:
        if transferer.ended and transferred.ended:
            return
        if transferer.ended:
            transferred.owner = ""
            self.legs.topology.tone(transferred, "failed")
            self.legs.clock.call_later(FAILED_TONE_SECONDS, self.legs.hangup, transferred)
        elif transferred.ended:
            self._release(transferer)
        else:
            self._connect(transferer, transferred)

    def _release(self, transferer: SipLeg) -> None:
        transferer.owner = ""
        self.legs.hangup(transferer)

    # ------------------------------------------------------------------ helpers

    def _direct(self, leg: SipLeg) -> bool:
        return self._is_direct(leg)

    @staticmethod
    def _describe(session: ReferSession) -> dict[str, object]:
        return {"transferer": session.transferer.number, "target": session.target.number,
                "failover": session.failover}

    def _publish(self, anchor: SipLeg, state: str, phase: str, **fields: object) -> None:
        self.legs.log(anchor).info("REFER transfer %s: %s %s", phase, state, fields)
        self.legs.publish(anchor, "transfer", service=OWNER, state=state, phase=phase,
                           transferred=anchor.number, **fields)

    def leak_report(self) -> int:
        """Transfers in progress (0 once every call settled)."""
        return len(self._sessions)


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
