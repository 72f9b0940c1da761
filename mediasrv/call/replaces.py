"""Replaces (RFC 3891): finding the dialog a request names, and INVITE-with-Replaces.

How this works:
- `ReplacesId.parse` reads a Replaces value (`call-id;to-tag=..;from-tag=..[;early-only]`,
  RFC 3891 §6.1), from the header or from a Refer-To URI's `?Replaces=` (percent-decoded,
  RFC 3515 §2.1). The to-tag is the tag of the UA holding the dialog (ours), the from-tag
  the other UA's, so the pair is our dialog ID (Call-ID, local tag, remote tag), RFC 3261 §12.
- `find(legs, rid)` matches it against our legs: a confirmed dialog (`leg.dialog`), the
  early dialog of an inbound leg we sent 180/183 on (we are its UAS), or the early dialog of
  one of an outbound leg's forks (we initiated it). The leg table remembers the dialog IDs of
  legs that ended for a while, so a late Replaces gets 603, not 481.
- `check()` is RFC 3891 §3 as a table: no match 481; a dialog that ended 603; a confirmed
  dialog named with `early-only` 486; an early dialog we did not initiate 481 (for an
  INVITE; a REFER may name one, see refer.py: that is the blond transfer of the spec).
- `ReplacesHandler.on_invite` serves an INVITE with Replaces from a phone (§3): after the
  checks, a new inbound leg answers it and takes the replaced leg's place in its bridge in
  the same loop turn (the other party hears the new phone at once, no gap), then the
  replaced leg is released (BYE; CANCEL for an early dialog we initiated). Its SDP must
  negotiate (488 otherwise). Who may replace: any authenticated caller (the gatekeeper
  already checked digest or a trusted source), as RFC 3891 §5 asks at least.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum
from urllib.parse import unquote

from mediasrv.call.leg import LegState, SipLeg
from mediasrv.call.legs import DialogId, Legs, inbound_early_id, party_of
from mediasrv.config import Extension
from mediasrv.sip.message import Request, make_response
from mediasrv.sip.sdp import SessionDescription
from mediasrv.sip.transaction import ServerTransaction

OWNER = "replaces"


class Match(Enum):
    """What a Replaces value names, as RFC 3891 §3 tells them apart."""

    NONE = "none"
    ENDED = "ended"
    CONFIRMED = "confirmed"
    EARLY_OURS = "early-ours"  # an early dialog this UA initiated (an outbound fork)
    EARLY_THEIRS = "early-theirs"  # an early dialog of an INVITE we received


# RFC 3891 §3: (what matched, early-only flag) -> status to answer; absent = go ahead.
CHECKS: dict[tuple[Match, bool], int] = {
    (Match.NONE, False): 481, (Match.NONE, True): 481,
    (Match.ENDED, False): 603, (Match.ENDED, True): 603,
    (Match.CONFIRMED, True): 486,
    (Match.EARLY_THEIRS, False): 481, (Match.EARLY_THEIRS, True): 481,
}


@dataclass(frozen=True)
class ReplacesId:
    """One Replaces value (RFC 3891 §6.1)."""

    call_id: str
    to_tag: str
    from_tag: str
    early_only: bool = False

    @classmethod
    def parse(cls, value: str) -> ReplacesId:
        """Parse `callid;to-tag=x;from-tag=y[;early-only]`; ValueError when malformed."""
        call_id, *params = [p.strip() for p in unquote(value).split(";")]
        fields = {k.strip().lower(): v.strip() for k, _, v in (p.partition("=") for p in params)}
        if not call_id or not fields.get("to-tag") or not fields.get("from-tag"):
            raise ValueError(f"Replaces needs a Call-ID, to-tag and from-tag: {value[:80]!r}")
        return cls(call_id, fields["to-tag"], fields["from-tag"], "early-only" in fields)

    @property
    def header(self) -> str:
        """The value as a Replaces header carries it (unescaped, RFC 3891 §6.1)."""
        return (f"{self.call_id};to-tag={self.to_tag};from-tag={self.from_tag}"
                + (";early-only" if self.early_only else ""))

    @property
    def dialog_id(self) -> DialogId:
        """Our dialog ID (Call-ID, local tag, remote tag): the to-tag is the holder's."""
        return (self.call_id, self.to_tag, self.from_tag)


def check(match: Match, early_only: bool) -> int | None:
    """The RFC 3891 §3 answer for what was found, or None to accept."""
    return CHECKS.get((match, early_only))


def find(legs: Legs, rid: ReplacesId) -> tuple[Match, SipLeg | None]:
    """The leg whose dialog `rid` names, and how it matched."""
    wanted = rid.dialog_id
    for leg in legs:
        match = _match_leg(leg, wanted)
        if match is not Match.NONE:
            return match, leg
    return (Match.ENDED if legs.recently_ended(wanted) else Match.NONE), None


def _match_leg(leg: SipLeg, wanted: DialogId) -> Match:
    if leg.ended:
        return Match.NONE
    if leg.dialog is not None and leg.dialog.id == wanted:
        return Match.CONFIRMED
    if not leg.answered:
        if leg.inbound and leg.state is LegState.RINGING and inbound_early_id(leg) == wanted:
            return Match.EARLY_THEIRS
        if any(f.dialog is not None and f.dialog.id == wanted and not f.done
               for f in leg.forks):
            return Match.EARLY_OURS
    return Match.NONE


def single_replaces(request: Request) -> ReplacesId:
    """The one Replaces header of an INVITE; ValueError for none, several or malformed."""
    values = request.headers.get_all("Replaces")
    if len(values) != 1 or "," in values[0]:
        raise ValueError("exactly one Replaces header is allowed (RFC 3891 §3)")
    return ReplacesId.parse(values[0])


class ReplacesHandler:
    """INVITE with Replaces received from a phone (RFC 3891 §3)."""

    def __init__(self, legs: Legs) -> None:
        self.legs = legs

    def on_invite(self, txn: ServerTransaction, request: Request, offer: SessionDescription,
                  caller_ext: Extension | None) -> None:
        """Check the named dialog; on success the new leg takes its place."""
        legs = self.legs
        try:
            rid = single_replaces(request)
        except ValueError as exc:
            legs.respond(txn, make_response(request, 400, str(exc)[:80]))
            return
        match, old = find(legs, rid)
        status = check(match, rid.early_only)
        party = party_of(legs, old) if old is not None else None
        if status is None and (party is None or old.owner or party.owner):
            status = 603  # nothing to join, or a service is using the call right now
        if status is not None:
            legs.respond(txn, make_response(request, status))
            return
        assert old is not None and party is not None
        new = legs.open_inbound(txn, request, offer, caller_ext, party.call)
        if new is not None:
            self._replace(old, party, new)

    def _replace(self, old: SipLeg, party: SipLeg, new: SipLeg) -> None:
        legs = self.legs
        legs.log(old).info(
            "%s replaces %s (%s) in the call with %s", new.number, old.number, old.id,
            party.number)
        legs.publish(party, "transfer", service=OWNER, state="START", replaced=old.id,
                     by=new.id, number=new.number)
        legs.answer(new)
        if not party.answered and party.inbound:
            legs.answer(party)  # our early dialog was picked up: the caller is answered
        legs.topology.bridge(party, new)
        for ref in ("dialing", "caller"):
            if getattr(party, ref) is old:
                setattr(party, ref, new)
        old.dialing = old.caller = old.held_peer = None
        legs.hangup(old)  # BYE (confirmed) or CANCEL (early, ours): RFC 3891 §3
        legs.publish(party, "transfer", service=OWNER, state="COMPLETE", replaced=old.id,
                     by=new.id, number=new.number)
