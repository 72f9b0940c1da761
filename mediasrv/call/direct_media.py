"""Direct media: two phones that both allow it send RTP to each other, not through us.

How this works (RFC 3264 §8 re-offers inside RFC 3261 §14 re-INVITEs):
- The leg table's `WatchedTopology` (topology.py) reports every change of who hears what
  to `DirectMedia.changed`. After a bridge of two legs, `DirectMedia.review` (run on the
  next loop turn, once the caller finished setting owners) checks the pair: both
  answered, both extensions with `direct_media = true`, neither held nor taken over by a
  service or a transfer, the same codec on both sides, and not refused before. Such a pair
  goes direct:
  re-INVITE the first phone with an offer carrying the second phone's address (OFFER_FIRST);
  its answer gives the first phone's address, which the second phone is then offered
  (OFFER_SECOND); when both answered the pair is DIRECT and the engine stops sending to and
  expecting RTP from both streams (no RTP timeout while the server sees no packets).
  The streams and their ports stay open, so media can come back at any time.
- Any change that touches a leg of a direct (or going-direct) pair — hold with music on
  hold, a prompt, a REFER transfer, a hang-up, a re-INVITE from the phone — takes the media
  back (ANCHORING): the engine sends to both phones again at once, and each phone that was
  switched is re-INVITEd with our own address and port (after its pending re-INVITE, if
  one is still running: RFC 3261 §14.1 allows one INVITE at a time). When every answer is
  in, the pair is reviewed again (it may go direct again, e.g. after a resume).
- A phone that rejects a direct offer (or gives an unusable answer) makes the pair anchored
  for good. While media is direct, no DTMF reaches the server, so no in-call code works
  (`check-config` warns about extensions with both direct media and services).
The pair states form `TRANSITIONS` (state, event) -> (action, next state).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum

from mediasrv.call import codecs
from mediasrv.call.leg import SipLeg
from mediasrv.call.legs import ALLOW, Legs
from mediasrv.sip import events as sip
from mediasrv.sip.errors import SdpNegotiationError, SipParseError
from mediasrv.sip.sdp import Negotiated, SessionDescription, build_offer, negotiate


class State(StrEnum):
    OFFER_FIRST = "OFFER_FIRST"
    OFFER_SECOND = "OFFER_SECOND"
    DIRECT = "DIRECT"
    ANCHORING = "ANCHORING"


class Ev(StrEnum):
    ANSWERED = "answered"  # the phone re-INVITEd last accepted the offer
    REJECTED = "rejected"  # it did not (non-2xx, timeout, unusable SDP)
    NEEDED = "needed"  # the server needs the media back
    ANCHORED = "anchored"  # every switched phone sends to us again


S, E = State, Ev
TRANSITIONS: dict[tuple[State, Ev], tuple[str, State | None]] = {
    (S.OFFER_FIRST, E.ANSWERED): ("offer_second", S.OFFER_SECOND),
    (S.OFFER_SECOND, E.ANSWERED): ("go_direct", S.DIRECT),
    (S.OFFER_FIRST, E.REJECTED): ("refuse", S.ANCHORING),
    (S.OFFER_SECOND, E.REJECTED): ("refuse", S.ANCHORING),
    (S.OFFER_FIRST, E.NEEDED): ("take_back", S.ANCHORING),
    (S.OFFER_SECOND, E.NEEDED): ("take_back", S.ANCHORING),
    (S.DIRECT, E.NEEDED): ("take_back", S.ANCHORING),
    (S.ANCHORING, E.ANCHORED): ("anchored", None),
}


@dataclass(eq=False)
class Pair:
    """Two legs whose phones exchange (or are being switched to exchange) RTP directly."""

    first: SipLeg
    second: SipLeg
    state: State = S.OFFER_FIRST
    switched: set[SipLeg] = field(default_factory=set)  # phones re-INVITEd away from us
    first_media: Negotiated | None = None  # where the first phone receives, from its answer

    @property
    def legs(self) -> tuple[SipLeg, SipLeg]:
        return (self.first, self.second)


class DirectMedia:
    """Puts eligible two-party calls on direct media and takes the media back on need."""

    def __init__(self, legs: Legs) -> None:
        self.legs = legs
        legs.topology.watchers.append(self.changed)
        self.pairs: dict[SipLeg, Pair] = {}
        self._pending: dict[object, tuple[SipLeg, bool]] = {}  # txn -> (leg, direct offer)
        self._busy: set[SipLeg] = set()  # legs with a re-INVITE of ours running
        self._refused: set[frozenset[str]] = set()
        self._acked: set[SipLeg] = set()  # inbound legs whose 2xx was ACKed
        self._awaiting_ack: set[SipLeg] = set()  # legs whose phone's re-INVITE is not ACKed

    def is_direct(self, leg: SipLeg) -> bool:
        """True while `leg`'s phone sends (or is being switched to send) media past us."""
        return leg in self.pairs

    # ------------------------------------------------------------------ triggers

    def on_ack(self, leg: SipLeg | None) -> None:
        """The caller ACKed our 2xx: its INVITE is done, so a re-INVITE may follow
        (RFC 3261 §14.1: one INVITE transaction at a time in a dialog)."""
        if leg is None or leg.ended:
            return
        self._awaiting_ack.discard(leg)
        if leg.inbound:
            self._acked.add(leg)
        self.review(leg)

    def changed(self, legs: set[SipLeg], bridged: bool) -> None:
        """Topology hook: a change touched `legs`; a new bridge may go direct."""
        ended = [leg for leg in legs if leg.ended]
        if ended:
            self._acked.difference_update(ended)
            self._awaiting_ack.difference_update(ended)
        if self.pairs:  # most calls never go direct: no set built for them
            for pair in {self.pairs[leg] for leg in legs if leg in self.pairs}:
                if not self._still_direct(pair):
                    self._fire(pair, E.NEEDED)
        if bridged and any(self._allows(leg) for leg in legs):
            self.legs.clock.call_soon(self.review, *legs)

    def phone_reinvite(self, leg: SipLeg, method: str) -> None:
        """The phone re-INVITEd (or UPDATEd) on its own: our answer anchors it; its peer
        follows. No re-INVITE of ours goes to it before its ACK."""
        if method == "INVITE":
            self._awaiting_ack.add(leg)
        pair = self.pairs.get(leg)
        if pair is not None:
            pair.switched.discard(leg)
            self._fire(pair, E.NEEDED)

    def review(self, *legs: SipLeg) -> None:
        """Starts direct media for any two of `legs` bridged together that qualify."""
        topology = self.legs.topology
        for leg in legs:
            peer = topology.peer_of(leg)
            if peer is not None and self._eligible(leg, peer):
                pair = Pair(leg, peer)
                self.pairs[leg] = self.pairs[peer] = pair
                self._log(pair, "going direct")
                self._reinvite(leg, self._offer_towards(leg, peer.media), direct=True)

    # ------------------------------------------------------------------ SIP

    def on_response(self, event: sip.ResponseReceived) -> bool:
        """A final response to one of our re-INVITEs; True when it was ours."""
        if event.response.status < 200 or event.txn not in self._pending:
            return event.txn in self._pending
        leg, direct = self._pending.pop(event.txn)
        self._busy.discard(leg)
        ok = 200 <= event.response.status < 300
        if ok and leg.dialog is not None:
            self.legs.sip.send_ack_2xx(leg.dialog.create_request("ACK"), leg.destination)
        media = self._answer(event.response.body, leg) if ok else None
        pair = self.pairs.get(leg)
        if direct:
            self._direct_answered(pair, leg, media, ok)
        else:
            self._anchor_answered(pair, leg, media)
        return True

    def on_failure(self, txn: object) -> SipLeg | None:
        """Our re-INVITE timed out: the phone is gone; its leg is returned for the call
        layer to end as a hang-up."""
        found = self._pending.pop(txn, None)
        if found is None:
            return None
        leg = found[0]
        self._busy.discard(leg)
        return leg

    def _direct_answered(self, pair: Pair | None, leg: SipLeg, media: Negotiated | None,
                         accepted: bool) -> None:
        if pair is None:
            return
        if accepted:  # it took the offer, usable answer or not: it must be brought back
            pair.switched.add(leg)
        if media is not None:
            if leg is pair.first:
                pair.first_media = media
        if pair.state is S.ANCHORING:
            self._anchor_next(pair)
        else:
            self._fire(pair, E.ANSWERED if media is not None else E.REJECTED)

    def _anchor_answered(self, pair: Pair | None, leg: SipLeg, media: Negotiated | None) -> None:
        if media is not None and not leg.ended:  # a transfer may have BYEd it meanwhile
            leg.media = media
            self.legs.apply_remote(leg)
        if pair is not None:
            self._anchor_next(pair)

    def _answer(self, body: bytes, leg: SipLeg) -> Negotiated | None:
        try:
            return negotiate(SessionDescription.parse(body),
                             codecs.allowed(self.legs.config, leg.extension))
        except (SdpNegotiationError, SipParseError, ValueError) as exc:
            self.legs.log(leg).warning("unusable re-INVITE answer from %s: %s", leg.number, exc)
            return None

    # ------------------------------------------------------------------ table actions

    def _fire(self, pair: Pair, event: Ev) -> None:
        row = TRANSITIONS.get((pair.state, event))
        if row is None:
            return
        action, target = row
        if target is not None:
            pair.state = target
        getattr(self, action)(pair)
        self._log(pair, f"{event} -> {pair.state}")

    def offer_second(self, pair: Pair) -> None:
        """The first phone now sends to the second; the second is offered the first."""
        engine = self.legs.engine
        engine.set_direction(pair.second.stream, send=False, recv=True)
        self._reinvite(pair.second, self._offer_towards(pair.second, pair.first_media),
                       direct=True)

    def go_direct(self, pair: Pair) -> None:
        """Both phones send to each other: the server neither sends nor waits for RTP."""
        for leg in pair.legs:
            self.legs.engine.set_direction(leg.stream, send=False, recv=False)
        self.legs.publish(pair.first, "direct_media", state="DIRECT", peer=pair.second.id)

    def refuse(self, pair: Pair) -> None:
        """A phone would not go direct: this pair stays anchored."""
        self._refused.add(self._key(pair))
        self.take_back(pair)

    def take_back(self, pair: Pair) -> None:
        """Media through the server again: the engine sends at once, the phones follow."""
        for leg in pair.legs:
            if not leg.ended:
                self.legs.engine.set_direction(leg.stream, send=not leg.remote_hold, recv=True)
        self.legs.publish(pair.first, "direct_media", state="ANCHORING", peer=pair.second.id)
        self.legs.clock.call_soon(self._anchor_next, pair)

    def anchored(self, pair: Pair) -> None:
        """Every phone sends to us again; the pair may qualify again later."""
        for leg in pair.legs:
            if self.pairs.get(leg) is pair:
                del self.pairs[leg]
        self.legs.publish(pair.first, "direct_media", state="ANCHORED", peer=pair.second.id)
        live = [leg for leg in pair.legs if not leg.ended]
        if live:
            self.legs.clock.call_soon(self.review, *live)

    def _anchor_next(self, pair: Pair) -> None:
        """Re-INVITEs the next switched phone back to us, one INVITE per dialog at a time."""
        if pair.state is not S.ANCHORING:
            return
        for leg in list(pair.switched):
            if leg.ended:
                pair.switched.discard(leg)
            elif leg not in self._busy:
                pair.switched.discard(leg)
                leg.sdp_version += 1
                self._reinvite(leg, self.legs.offer(leg), direct=False)
        if not pair.switched and not any(leg in self._busy for leg in pair.legs):
            self._fire(pair, E.ANCHORED)

    # ------------------------------------------------------------------ helpers

    def _reinvite(self, leg: SipLeg, body: bytes, direct: bool) -> None:
        if leg.dialog is None or leg.ended:
            return
        request = leg.dialog.create_request("INVITE", body=body, headers=(
            ("Allow", ALLOW), ("Content-Type", "application/sdp")))
        txn = self.legs.sip.send_request(request, leg.destination)
        self._pending[txn] = (leg, direct)
        self._busy.add(leg)

    def _offer_towards(self, leg: SipLeg, other: Negotiated | None) -> bytes:
        """An offer to `leg`'s phone with the other phone's address, codec and events."""
        assert other is not None and leg.media is not None
        leg.sdp_version += 1
        sdp = build_offer(self.legs.config.rtp.address, other.remote_port, [other.codec],
                          other.event_pt, session_id=leg.session_id, version=leg.sdp_version,
                          ptime=other.ptime)
        sdp.connection = other.remote_addr
        return sdp.to_bytes()

    def _allows(self, leg: SipLeg) -> bool:
        return (leg.extension is not None and leg.extension.direct_media
                and not (leg.srtp is not None and leg.srtp.encrypted))   # keys end at us

    def _eligible(self, a: SipLeg, b: SipLeg) -> bool:
        return (self._fit(a) and self._fit(b) and a not in self.pairs and b not in self.pairs
                and a.media is not None and b.media is not None
                and a.media.codec == b.media.codec and self._key(Pair(a, b)) not in self._refused)

    def _fit(self, leg: SipLeg) -> bool:
        return (self._allows(leg) and leg.answered and not leg.owner and not leg.remote_hold
                and (leg in self._acked or not leg.inbound) and leg not in self._awaiting_ack
                and leg.dialog is not None and leg not in self._busy
                and leg.stream not in self.legs.recordings)

    def _still_direct(self, pair: Pair) -> bool:
        a, b = pair.legs
        topology = self.legs.topology
        return (topology.peer_of(a) is b and topology.peer_of(b) is a
                and self._fit_now(a) and self._fit_now(b))

    def _fit_now(self, leg: SipLeg) -> bool:
        return not leg.ended and not leg.owner and not leg.remote_hold

    @staticmethod
    def _key(pair: Pair) -> frozenset[str]:
        return frozenset(leg.id for leg in pair.legs)

    def _log(self, pair: Pair, what: str) -> None:
        self.legs.log(pair.first).info("direct media %s-%s: %s", pair.first.number,
                                        pair.second.number, what)

    def leak_report(self) -> int:
        """Pairs and re-INVITEs still tracked (0 once every call settled)."""
        return (len(self.pairs) + len(self._pending) + len(self._acked)
                + len(self._awaiting_ack))
