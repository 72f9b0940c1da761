"""The leg table: every live leg, its indexes, and the one-leg operations the call layer shares.

How this works: `Legs` is the one owner of the legs. It indexes them by engine stream, by
the INVITE server transaction that opened them, by the client transactions of their forks
and by dialog ID (RFC 3261 §12), remembers the dialogs of legs that ended for a while (so a
late Replaces gets 603, RFC 3891 §3), and holds the media topology. Its public methods are
what the parts of the call layer need on one leg — open an inbound leg for an INVITE, answer
it (200 with our SDP answer, RFC 3264 §6), respond, hang it up (BYE, CANCEL or a final
answer, RFC 3261 §15), end it (close its stream, drop its indexes, publish `leg.ended`),
play a prompt, build our SDP offer, our Contact — so the B2BUA, REFER, Replaces, direct media
and voicemail all depend on this module and none on another. The B2BUA decides *what* happens
to calls (routing, failover, who is told); this table does the bookkeeping and the wire work.
It reads the time only from the `Clock` it is given.
"""

from __future__ import annotations

import logging
from collections import Counter, OrderedDict
from collections.abc import Callable, Iterator
from typing import Protocol

from mediasrv.call import codecs, srtp_policy
from mediasrv.call.clock import Clock
from mediasrv.call.leg import Call, Fork, LegState, SipLeg
from mediasrv.call.topology import WatchedTopology
from mediasrv.config import Config, Extension, Listener
from mediasrv.logs import call_logger
from mediasrv.media.engine import MediaEngine, MediaError
from mediasrv.media.events import RecordingFinished
from mediasrv.sip.dialog import Dialog
from mediasrv.sip.endpoint import Destination
from mediasrv.sip.errors import SdpNegotiationError
from mediasrv.sip.message import Request, Response, make_response
from mediasrv.sip.sdp import SessionDescription, build_answer, build_offer, negotiate
from mediasrv.sip.transaction import ClientTransaction, ServerTransaction
from mediasrv.sip.uri import generate_tag

log = logging.getLogger("mediasrv.call")

ALLOW = "INVITE, ACK, CANCEL, BYE, OPTIONS, UPDATE, INFO, NOTIFY, REGISTER, REFER"
EVENT_PT = 101
ENDED_MEMORY = 32.0  # seconds a terminated dialog is still recognised (64·T1 with T1 = 0.5 s)
ENDED_MAX = 4096  # at most this many remembered, oldest forgotten first

DialogId = tuple[str, str, str]


class SipPort(Protocol):
    """What the call layer needs of the SIP side (the transport driver provides it)."""

    def send_request(self, request: Request, destination: Destination) -> ClientTransaction: ...
    def send_response(self, txn: ServerTransaction, response: Response) -> Dialog | None: ...
    def cancel(self, invite_txn: ClientTransaction) -> None: ...
    def send_ack_2xx(self, ack: Request, destination: Destination) -> None: ...


class Recording(Protocol):
    """A voicemail recording in progress on one leg's stream (voicemail.py)."""

    interrupted: bool

    def interrupt(self) -> None: ...
    def finished(self, event: RecordingFinished) -> None: ...


class Legs:
    """The live legs and their indexes; iterating gives the legs."""

    def __init__(self, config: Config, sip: SipPort, engine: MediaEngine, clock: Clock) -> None:
        self.config = config
        self.sip = sip
        self.engine = engine
        self.clock = clock
        self.topology = WatchedTopology(engine)
        self.observers: list[Callable[[dict[str, object]], None]] = []
        self.recordings: dict[int, Recording] = {}  # by stream: voicemail being recorded
        self._legs: set[SipLeg] = set()
        self._by_stream: dict[int, SipLeg] = {}
        self._live_by_call: Counter[str] = Counter()  # call id -> legs not ended
        self._by_server_txn: dict[object, SipLeg] = {}
        self._by_client_txn: dict[object, tuple[SipLeg, Fork]] = {}
        self._by_dialog: dict[DialogId, SipLeg] = {}
        self._plays: dict[int, Callable[[], None]] = {}
        self._ended: OrderedDict[DialogId, float] = OrderedDict()
        self._sdp_ids = int(clock.wall())
        self._ours_of: object = None  # the listeners `_ours_memo` was written for
        self._ours_memo: dict[tuple[str, bool], tuple[str, str]] = {}

    def __iter__(self) -> Iterator[SipLeg]:
        return iter(list(self._legs))

    def __len__(self) -> int:
        return len(self._legs)

    def __contains__(self, leg: object) -> bool:
        return leg in self._legs

    # ------------------------------------------------------------------ look-ups

    def by_stream(self, stream: int) -> SipLeg | None:
        return self._by_stream.get(stream)

    def by_server_txn(self, txn: object) -> SipLeg | None:
        return self._by_server_txn.get(txn)

    def by_client_txn(self, txn: object) -> tuple[SipLeg, Fork] | None:
        return self._by_client_txn.get(txn)

    def by_dialog(self, dialog_id: DialogId) -> SipLeg | None:
        return self._by_dialog.get(dialog_id)

    def by_id(self, leg_id: str) -> SipLeg | None:
        return next((leg for leg in self._legs if leg.id == leg_id), None)

    def of_call(self, call_id: str) -> list[SipLeg]:
        return [leg for leg in self._legs if leg.call_id == call_id]

    def live_in_call(self, call_id: str) -> int:
        """How many legs of the call have not ended (O(1): call records ask on every end)."""
        return self._live_by_call.get(call_id, 0)

    def recently_ended(self, dialog_id: DialogId) -> bool:
        """True when a leg with this dialog ended less than `ENDED_MEMORY` seconds ago."""
        ended = self._ended.get(dialog_id)
        return ended is not None and self.clock.now() - ended < ENDED_MEMORY

    # ------------------------------------------------------------------ adding legs

    def add(self, leg: SipLeg) -> None:
        """A new leg (its stream is open, detecting DTMF: `dtmf_mode`): indexed, in its call."""
        self._legs.add(leg)
        self._live_by_call[leg.call_id] += 1
        self._by_stream[leg.stream] = leg
        if leg.inbound and leg.invite_txn is not None:
            self._by_server_txn[leg.invite_txn] = leg

    def open_inbound(self, txn: ServerTransaction, request: Request, offer: SessionDescription,
                     ext: Extension | None, call: Call | None = None) -> SipLeg | None:
        """An inbound leg for an INVITE (in `call`, else a new call named by its Call-ID);
        None when the offer does not negotiate (488 sent) or no port is free (503 sent)."""
        try:
            media = negotiate(offer, codecs.allowed(self.config, ext), secure=True)
            srtp = srtp_policy.on_offer(offer, media, srtp_policy.policy_of(ext))
            stream = self.engine.open_stream(group=call.id if call else request.call_id,
                                             dtmf=dtmf_mode(ext))
        except SdpNegotiationError as exc:
            self.respond(txn, make_response(request, 488, reason_488(exc)))
            return None
        except MediaError as exc:
            log.error("cannot take call %s: %s", request.call_id, exc)
            self.respond(txn, make_response(request, 503, "No media ports"))
            return None
        via = request.top_via
        flow = (via.received or via.host, via.rport or via.port or 5060, via.transport.lower())
        number = ext.number if ext else (request.from_addr.uri.user or "anonymous")
        leg = SipLeg(call or Call(request.call_id), True, stream, number, ext, flow,
                     invite_txn=txn, invite=request, offer=offer, media=media,
                     session_id=self.next_sdp_id(), srtp=srtp)
        leg.tag = generate_tag()
        self.add(leg)
        self.apply_remote(leg)
        return leg

    def add_fork(self, leg: SipLeg, fork: Fork) -> None:
        leg.forks.append(fork)
        self._by_client_txn[fork.txn] = (leg, fork)

    def drop_fork(self, txn: object) -> tuple[SipLeg, Fork] | None:
        return self._by_client_txn.pop(txn, None)

    def set_dialog(self, leg: SipLeg, dialog: Dialog) -> None:
        leg.dialog = dialog
        self._by_dialog[dialog.id] = leg

    # ------------------------------------------------------------------ SIP on one leg

    def respond(self, txn: ServerTransaction, response: Response) -> Dialog | None:
        response.headers.set("Server", "mediasrv")
        return self.sip.send_response(txn, response)

    def answer(self, leg: SipLeg) -> None:
        """200 OK to an inbound leg's INVITE with our SDP answer."""
        if not leg.inbound or leg.answered or leg.ended or leg.invite is None:
            return
        response = make_response(leg.invite, 200, to_tag=leg.tag, headers=[
            ("Contact", self.contact(leg.destination)), ("Allow", ALLOW)])
        self.attach_answer(leg, response)
        leg.offer = None  # answered: nothing answers it again; a live call keeps no parse of it
        dialog = self.respond(leg.invite_txn, response)
        leg.state = LegState.ANSWERED
        if dialog is not None:
            self.set_dialog(leg, dialog)

    def attach_answer(self, leg: SipLeg, response: Response) -> None:
        """Our SDP answer to the leg's INVITE offer as the body of `response`."""
        offer = leg.offer
        assert offer is not None  # an inbound leg keeps the offer it was opened with
        sdp = build_answer(offer, leg.media, self.config.rtp.address,
                           self.engine.local_port(leg.stream), leg.session_id, leg.sdp_version)
        srtp_policy.secure_answer(leg.srtp, sdp, offer, leg.media)
        response.headers.set("Content-Type", "application/sdp")
        response.body = sdp.to_bytes()

    def hangup(self, leg: SipLeg, status: int = 0, reason: str | None = None) -> None:
        """BYE an answered leg, CANCEL a ringing outbound one, reject an unanswered inbound one."""
        if leg.ended:
            return
        if leg.answered and leg.dialog is not None:
            self.sip.send_request(leg.dialog.create_request("BYE"), leg.destination)
        elif leg.inbound and leg.invite is not None and leg.invite_txn is not None:
            self.respond(leg.invite_txn, make_response(leg.invite, status or 480, reason,
                                                       to_tag=leg.tag))
        else:
            self.cancel_forks(leg)
        self.end(leg)

    def cancel_forks(self, leg: SipLeg) -> None:
        """CANCEL every fork of an outbound leg still without a final answer."""
        for fork in leg.forks:
            if not fork.done:
                fork.done = True
                self.sip.cancel(fork.txn)

    def end(self, leg: SipLeg) -> None:
        """The leg is over: its stream closes, its indexes go, `leg.ended` is published."""
        if leg.ended:
            return
        leg.state = LegState.ENDED
        self.stop_ring_timer(leg)
        self._remember_dialogs(leg)
        self.topology.remove(leg)
        self._legs.discard(leg)
        self._live_by_call[leg.call_id] -= 1
        if self._live_by_call[leg.call_id] <= 0:
            del self._live_by_call[leg.call_id]
        self._by_stream.pop(leg.stream, None)
        if leg.invite_txn is not None:
            self._by_server_txn.pop(leg.invite_txn, None)
        for fork in leg.forks:
            if fork.done:
                self._by_client_txn.pop(fork.txn, None)
        if leg.dialog is not None:
            self._by_dialog.pop(leg.dialog.id, None)
        _unlink_ended(leg)
        rtp: dict[str, int] = {}
        try:
            rtp = self.engine.close_stream(leg.stream)     # returns the final counters
        except MediaError:
            pass
        self.log(leg).debug("leg %s (%s) ended", leg.id, leg.number)
        self.publish(leg, "leg.ended", number=leg.number, rtp=rtp)

    def stop_ring_timer(self, leg: SipLeg) -> None:
        if leg.ring_timer is not None:
            leg.ring_timer.cancel()
            leg.ring_timer = None

    # ------------------------------------------------------------------ media on one leg

    def apply_remote(self, leg: SipLeg) -> None:
        """Tells the engine where the leg's phone receives and in which codec."""
        m = leg.media
        if m is not None:
            srtp_policy.apply(self.engine, leg.stream, leg.srtp)   # keys before the first packet
            self.engine.set_remote(leg.stream, m.remote_addr, m.remote_port, codec=m.codec,
                                   pt=m.pt, event_pt=m.event_pt)

    def play_prompt(self, leg: SipLeg, name: str,
                    then: Callable[[], None] | None = None) -> int:
        """The leg hears prompt `name` in its language; `then` runs when it played to the end."""
        play_id = self.topology.prompt(leg, f"{leg.language}/{name}")
        if then is not None:
            self._plays[play_id] = then
        return play_id

    def stop_recording(self, leg: SipLeg) -> None:
        """A new media action on a leg ends its voicemail recording (the message is kept)."""
        recording = self.recordings.get(leg.stream)
        if recording is not None and not recording.interrupted:
            recording.interrupt()

    def prompt_done(self, play_id: int) -> Callable[[], None] | None:
        """What was to run after prompt `play_id` (and forget it)."""
        return self._plays.pop(play_id, None)

    # ------------------------------------------------------------------ SDP and Contact

    def offer(self, leg: SipLeg) -> bytes:
        """Our SDP offer towards the leg's phone, with our own address and the leg's port."""
        sdp = build_offer(self.config.rtp.address, self.engine.local_port(leg.stream),
                          codecs.offer_order(self.config, leg), EVENT_PT,
                          session_id=leg.session_id, version=leg.sdp_version,
                          ptime=self.config.rtp.ptime)
        if leg.srtp is None:
            leg.srtp = srtp_policy.LegSrtp(srtp_policy.policy_of(leg.extension))
        srtp_policy.secure_offer(leg.srtp, sdp)
        return sdp.to_bytes()

    def next_sdp_id(self) -> int:
        """A fresh SDP session id (RFC 4566 §5.2) for a new leg."""
        self._sdp_ids += 1
        return self._sdp_ids

    def sip_host(self, transport: str = "udp", v6: bool = False) -> str:
        """host:port of our listener for `transport` and the address family."""
        return self._ours(transport, v6)[0]

    def contact(self, destination: Destination) -> str:
        """Our Contact towards a phone: the listener of its transport and address family
        (RFC 3261 §8.1.1.8)."""
        transport = destination[2]
        return self._ours(transport, ":" in destination[0])[1]

    def _ours(self, transport: str, v6: bool) -> tuple[str, str]:
        """(host:port, Contact) for a transport and family, written once per listener set
        (4 look-ups per call; a reload may bring other listeners)."""
        listeners = self.config.sip.listen
        if listeners is not self._ours_of:
            self._ours_of, self._ours_memo = listeners, {}
        ours = self._ours_memo.get((transport, v6))
        if ours is None:
            ours = self._ours_memo[(transport, v6)] = _ours(listeners, transport, v6)
        return ours

    # ------------------------------------------------------------------ logs and events

    def log(self, leg: SipLeg) -> logging.LoggerAdapter:
        """The logger of the leg's call: one adapter per call, not one per line."""
        call = leg.call
        if call.log is None:
            call.log = call_logger(log, call.id)
        return call.log

    def publish(self, leg: SipLeg, kind: str, **fields: object) -> None:
        """Hands one event (call lifecycle, transfer states) to every observer."""
        event: dict[str, object] = {"kind": kind, "call_id": leg.call_id, "leg": leg.id,
                                    "time": self.clock.wall(), **fields}
        for observer in self.observers:
            try:
                observer(event)
            except Exception:  # an observer's bug must not break call handling
                log.exception("observer failed on %s", kind)

    def leak_report(self) -> dict[str, int]:
        return {"legs": len(self._legs), "streams": len(self._by_stream),
                "server_txns": len(self._by_server_txn), "client_txns": len(self._by_client_txn),
                "dialogs": len(self._by_dialog), "plays": len(self._plays)}

    # ------------------------------------------------------------------ ended dialogs

    def _remember_dialogs(self, leg: SipLeg) -> None:
        now = self.clock.now()
        for dialog_id in dialog_ids(leg):
            self._ended[dialog_id] = now
            self._ended.move_to_end(dialog_id)
        while len(self._ended) > ENDED_MAX:
            self._ended.popitem(last=False)


def dtmf_mode(ext: Extension | None) -> str:
    """How the engine detects the DTMF of a leg to extension `ext` (its `dtmf` setting)."""
    return ext.dtmf if ext else "auto"


def reason_488(exc: SdpNegotiationError) -> str:
    """The 488's reason phrase: the SRTP refusals say why (a codec mismatch keeps the usual)."""
    text = str(exc)
    return text if "SRTP" in text or "crypto" in text else "Not Acceptable Here"


def inbound_early_id(leg: SipLeg) -> DialogId | None:
    """The early dialog the caller sees once we sent it a 180/183 with our tag."""
    if not leg.inbound or leg.invite is None or not leg.tag:
        return None
    return (leg.invite.call_id, leg.tag, leg.invite.from_tag or "")


def dialog_ids(leg: SipLeg) -> list[DialogId]:
    """Every dialog ID the leg has: confirmed, its early one as UAS, its forks' early ones."""
    ids = [leg.dialog.id] if leg.dialog is not None else []
    early = inbound_early_id(leg)
    ids += [early] if early is not None else []
    return ids + [f.dialog.id for f in leg.forks if f.dialog is not None]


def _unlink_ended(leg: SipLeg) -> None:
    """Cut the links between `leg` and every linked leg that ended too (caller <-> the leg it
    dialled, a held peer): they are reference cycles, which would keep an ended call for the
    cycle collector. Readers treat an ended linked leg as no leg, so this changes nothing."""
    for other in (leg.caller, leg.dialing, leg.held_peer):
        if other is not None and other.ended:
            for a, b in ((leg, other), (other, leg)):
                if a.caller is b:
                    a.caller = None
                if a.dialing is b:
                    a.dialing = None
                if a.held_peer is b:
                    a.held_peer = None


def party_of(legs: Legs, leg: SipLeg) -> SipLeg | None:
    """The remote party `leg` is (or was until a hold) talking to, or is ringing for."""
    for other in (legs.topology.peer_of(leg), leg.held_peer, leg.dialing, leg.caller):
        if other is not None and not other.ended:
            return other
    return None


def _ours(listeners: tuple[Listener, ...], transport: str, v6: bool) -> tuple[str, str]:
    lst = next((x for x in listeners if x.transport == transport and (":" in x.host) == v6),
               next((x for x in listeners if x.transport == transport), listeners[0]))
    host = f"[{lst.host}]:{lst.port}" if ":" in lst.host else f"{lst.host}:{lst.port}"
    suffix = f";transport={transport}" if transport in ("tcp", "tls") else ""
    return host, f"<sip:mediasrv@{host}{suffix}>"
