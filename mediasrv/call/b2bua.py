"""The B2BUA: SIP events in, calls between extensions out, media anchored in the engine.

How this works (RFC 3261 §13, §14, §15; RFC 3264 offer/answer):

- Out-of-dialog requests: REGISTER and INVITE pass the `Gatekeeper` (digest or trusted
  source) first; REGISTER goes to the `Registrar`; OPTIONS is answered 200; other methods 405.
  A draining node answers new INVITEs and OPTIONS 503 (`proxy_mode.py`).
- An INVITE from a caller opens an inbound leg (one engine stream, the caller's offer
  negotiated) and `dial()`s the extension in the Request-URI: one outbound leg, one INVITE per
  registered contact, or one to `sip.outbound_proxy` when it has none here (parallel fork;
  first 2xx wins, the other forks are CANCELled, a late second 2xx is ACKed and BYEd). 180
  is relayed; 183 with SDP is relayed with our SDP and the legs are bridged for early media;
  200 answers the caller with our SDP and bridges the legs.
- A final failure of every fork, the extension's ring timeout, or no live binding is a failover
  condition (`failover.py`); a `forward` re-dials the same leg object towards the next
  extension; any other action ends the leg and is carried out by the leg's owner: the ordinary
  call here (return/hangup: the caller gets the status; announce: prompt then BYE; voicemail),
  or a service through `LegFailed`.
- In-dialog: BYE ends a leg; a re-INVITE is answered with our SDP and, when it holds or
  resumes, the other party gets music on hold or is bridged back; UPDATE, INFO, OPTIONS and
  NOTIFY get 200; REFER goes to `refer.py`, which answers it and hands the transfer to the
  services (the built-in `services/refer_transfer.py`: blind, attended and blond).
- An INVITE with Replaces goes to `replaces.py` (RFC 3891: the new leg takes the old one's
  place in its bridge). Behind a proxy, a REFER naming a dialog of another node makes
  `dial(replaces=...)` send one through the proxy (`proxy_mode.py`).
- Direct media (`direct_media.py`) watches the topology and re-INVITEs phones of eligible
  two-party calls to each other, and back to us when a service needs the media.
- Every call event is offered to `listener` (the service host) first; a leg a service took
  over (`leg.owner`) is left to it. Otherwise a leg that ends takes its peer down with it.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from mediasrv.call import codecs, srtp_policy
from mediasrv.call.api import (
    CallAnswered,
    CallEvent,
    DigitReceived,
    LegAnswered,
    LegFailed,
    LegHungUp,
    LegRinging,
    PromptFinished,
)
from mediasrv.call.clock import Clock
from mediasrv.call.direct_media import DirectMedia
from mediasrv.call.failover import (
    CONDITION_STATUS,
    MAX_HOPS,
    NOT_REGISTERED,
    condition_for_status,
    next_step,
)
from mediasrv.call.gatekeeper import Gatekeeper
from mediasrv.call.leg import Fork, LegState, SipLeg
from mediasrv.call.legs import ALLOW, Legs, SipPort, dtmf_mode
from mediasrv.call.proxy_mode import Drain, via_proxy
from mediasrv.call.refer import ReferRequests
from mediasrv.call.registrar import Registrar
from mediasrv.call.replaces import ReplacesHandler
from mediasrv.call.store import Store
from mediasrv.call.voicemail import Voicemail
from mediasrv.config import Config, Extension, FailoverAction
from mediasrv.media import events as media_events
from mediasrv.media.engine import MediaEngine
from mediasrv.sip import events as sip
from mediasrv.sip.endpoint import Destination
from mediasrv.sip.errors import SipParseError
from mediasrv.sip.message import Headers, Request, Response, make_response
from mediasrv.sip.sdp import (
    SdpNegotiationError,
    SessionDescription,
    build_answer,
    build_offer,
    is_hold,
    negotiate,
)
from mediasrv.sip.transaction import ServerTransaction
from mediasrv.sip.uri import generate_call_id, generate_tag

log = logging.getLogger("mediasrv.call")


class B2BUA:
    def __init__(self, config: Config, sip_port: SipPort, engine: MediaEngine,
                 registrar: Registrar, gatekeeper: Gatekeeper, store: Store,
                 clock: Clock) -> None:
        self.legs = Legs(config, sip_port, engine, clock)  # the legs and their indexes
        self.sip = sip_port  # SipDriver: send_request / send_response / cancel / send_ack_2xx
        self.engine = engine
        self.registrar = registrar
        self.gatekeeper = gatekeeper
        self.store = store
        self.clock = clock
        self.topology = self.legs.topology
        self.observers = self.legs.observers
        self.direct = DirectMedia(self.legs)  # direct media per extension: watches the topology
        self.listener: Callable[[CallEvent], bool] = lambda _event: False
        self.transfers = ReferRequests(self.legs, lambda event: self.listener(event),
                                       self.direct.is_direct)
        self.replaces = ReplacesHandler(self.legs)
        engine.dtls_sink = self._on_dtls  # DTLS-SRTP handshakes (srtp_policy.on_dtls)
        self.drain = Drain()  # SIGTERM: new calls and OPTIONS get 503, existing calls go on
        self._sip_handlers: dict[type, Callable] = {
            sip.RequestReceived: self._on_request,
            sip.ResponseReceived: self._on_response,
            sip.CancelReceived: lambda event: self._caller_gone(event.invite_txn),
            sip.TransportFailed: self._on_transport_failed,
            sip.TransactionTimedOut: lambda event: self._on_client_failure(event.txn),
            sip.AckReceived: self._on_ack,
            sip.AckTimedOut: self._on_ack_timeout,
        }

    @property
    def config(self) -> Config:
        return self.legs.config

    @config.setter
    def config(self, config: Config) -> None:  # a reload: new calls use it
        self.legs.config = config

    # ================================================================== SIP events

    def on_sip_event(self, event: sip.SipEvent) -> None:
        # by the event's exact type (the endpoint's events are final dataclasses): one dict
        # look-up instead of a chain of isinstance checks, for ~10 events per call
        handler = self._sip_handlers.get(type(event))
        if handler is not None:
            handler(event)

    def _on_transport_failed(self, event: sip.TransportFailed) -> None:
        if self.legs.by_server_txn(event.txn):
            self._caller_gone(event.txn)  # its TCP connection closed while ringing (§17.2.4)
        else:
            self._on_client_failure(event.txn)

    def _on_ack(self, event: sip.AckReceived) -> None:
        if event.dialog is not None:
            self.direct.on_ack(self.legs.by_dialog(event.dialog.id))

    def _on_ack_timeout(self, event: sip.AckTimedOut) -> None:
        leg = self.legs.by_dialog(event.dialog.id) if event.dialog is not None else None
        if leg is not None:
            self._leg_gone(leg, notify=False, bye=True)

    def _caller_gone(self, invite_txn: object) -> None:
        leg = self.legs.by_server_txn(invite_txn)
        if leg is not None and not leg.answered:
            self._leg_gone(leg)

    def _on_request(self, event: sip.RequestReceived) -> None:
        request = event.request
        if event.dialog is not None:
            leg = self.legs.by_dialog(event.dialog.id)
            if leg is None:
                self.legs.respond(event.txn, make_response(request, 481))
            else:
                self._in_dialog(leg, event.txn, request)
            return
        refusal = self.drain.refusal(request)
        if refusal is not None:
            self.legs.respond(event.txn, refusal)
            return
        handler = {"REGISTER": self._on_register, "INVITE": self._on_invite,
                   "OPTIONS": self._on_options}.get(request.method)
        if handler is None:
            self.legs.respond(event.txn, make_response(request, 405, headers=[("Allow", ALLOW)]))
        else:
            handler(event.txn, request)

    def _on_options(self, txn, request: Request) -> None:
        self.legs.respond(txn, make_response(request, 200, headers=[
            ("Allow", ALLOW), ("Accept", "application/sdp")]))

    def _on_register(self, txn, request: Request) -> None:
        verdict = self.gatekeeper.check(request, self.clock.now())
        if verdict.response is not None:
            if verdict.response.status:
                self.legs.respond(txn, verdict.response)
            return
        if verdict.extension is None:
            self.legs.respond(txn, make_response(request, 403, "Trusted sources do not register"))
            return
        via = request.top_via
        source = (via.received or via.host, via.rport or via.port or 5060,
                  via.transport.lower())
        self.legs.respond(txn, self.registrar.register(verdict.extension.number, request, source,
                                                   self.clock.wall()))

    # ================================================================== inbound INVITE

    def _on_invite(self, txn, request: Request) -> None:
        verdict = self.gatekeeper.check(request, self.clock.now())
        if verdict.response is not None:
            if verdict.response.status:
                self.legs.respond(txn, verdict.response)
            return
        try:
            target = request.request_uri.user or ""
            offer = SessionDescription.parse(request.body) if request.body else None
        except (SipParseError, ValueError) as exc:
            self.legs.respond(txn, make_response(request, 400, f"Bad request: {exc}"))
            return
        if offer is None:
            self.legs.respond(txn, make_response(request, 488, "An SDP offer is required"))
            return
        if "Replaces" in request.headers:
            self.replaces.on_invite(txn, request, offer, verdict.extension)
            return
        if target not in self.config.extensions:
            self.legs.respond(txn, make_response(request, 404))
            return
        self._start_call(txn, request, offer, target, verdict.extension)

    def _start_call(self, txn: ServerTransaction, request: Request,
                    offer: SessionDescription, target: str,
                    caller_ext: Extension | None) -> None:
        if not self.engine.admits(self.clock.now()):
            log.warning("refusing call %s: every media thread is saturated", request.call_id)
            self.legs.respond(txn, make_response(request, 503, "Media Saturated",
                                                 headers=[("Retry-After", "5")]))
            return
        leg = self.legs.open_inbound(txn, request, offer, caller_ext)
        if leg is None:
            return
        self._log(leg).info("call from %s to %s", leg.number, target)
        self.publish(leg, "call.started", caller=leg.number, callee=target)
        callee = self.dial(target, caller=leg, purpose="call")
        leg.dialing = callee

    # ================================================================== outbound legs

    def dial(self, number: str, *, caller: SipLeg, purpose: str,
             failover: bool = True, replaces: str = "") -> SipLeg:
        """A new outbound leg towards extension `number` (see CallControl.dial)."""
        ext = self.config.extensions.get(number)
        stream = self.engine.open_stream(group=caller.call_id, dtmf=dtmf_mode(ext))
        leg = SipLeg(caller.call, False, stream, number, ext, ("", 0, "udp"),
                     purpose=purpose, session_id=self.legs.next_sdp_id(),
                     hops=0 if failover else MAX_HOPS,  # no hop left: no forward
                     replaces=replaces)
        leg.caller = caller
        leg.owner = caller.owner if purpose != "call" else None
        self.legs.add(leg)
        self._invite_contacts(leg)
        return leg

    def _invite_contacts(self, leg: SipLeg) -> None:
        # a Replaces names a dialog of another node: only the proxy knows which
        contacts = ([] if leg.replaces else self.registrar.contacts(leg.number, self.clock.wall())
                    ) or via_proxy(leg.number, self.config)
        if not contacts:
            self.clock.call_soon(self._failed, leg, NOT_REGISTERED, 480)
            return
        call_id, tag = generate_call_id(self.config.rtp.address), generate_tag()
        offer = self.legs.offer(leg)
        for binding in contacts:
            dest = (binding.source_host, binding.source_port, binding.transport)
            request = self._initial_invite(leg, binding.contact, call_id, tag, offer, dest)
            fork = Fork(self.sip.send_request(request, dest), request, dest)
            self.legs.add_fork(leg, fork)
        leg.invite = leg.forks[0].request
        timeout = leg.extension.ring_timeout if leg.extension else 20.0
        leg.ring_timer = self.clock.call_later(timeout, self._ring_timeout, leg)
        # per-leg detail: DEBUG, so INFO keeps one line per call event (start, answer, end)
        self._log(leg).debug("dialling %s (%d contact(s), %s)", leg.number, len(contacts),
                             leg.purpose)

    def _initial_invite(self, leg: SipLeg, contact: str, call_id: str, tag: str,
                        offer: bytes, destination: Destination) -> Request:
        caller = leg.caller
        host = self.legs.sip_host(destination[2], ":" in destination[0])
        display = caller.extension.name if caller and caller.extension else ""
        from_user = caller.number if caller else "mediasrv"
        headers = Headers([
            ("Max-Forwards", "70"),
            ("From", f"\"{display}\" <sip:{from_user}@{host}>;tag={tag}" if display
             else f"<sip:{from_user}@{host}>;tag={tag}"),
            ("To", f"<sip:{leg.number}@{host}>"),
            ("Call-ID", call_id), ("CSeq", "1 INVITE"),
            ("Contact", self.legs.contact(destination)), ("Allow", ALLOW),
            ("Content-Type", "application/sdp"),
        ])
        if leg.replaces:
            headers.add("Replaces", leg.replaces)
        return Request("INVITE", contact, headers, offer)

    def _on_response(self, event: sip.ResponseReceived) -> None:
        found = self.legs.by_client_txn(event.txn)
        if found is None:
            if not self.direct.on_response(event):  # our re-INVITEs moving media
                self._stray_answer(event)
            return
        leg, fork = found
        status = event.response.status
        if status < 200:
            if status > 100:
                self._provisional(leg, fork, event)
        elif status < 300:
            self._fork_answered(leg, fork, event)
        else:
            fork.done = True
            self.legs.drop_fork(event.txn)
            leg.last_status = _worse(leg.last_status, status)
            if not leg.answered and all(f.done for f in leg.forks):
                self._failed(leg, condition_for_status(leg.last_status), leg.last_status)

    def _stray_answer(self, event: sip.ResponseReceived) -> None:
        """A 2xx to an INVITE whose leg is gone (its 200 crossed our CANCEL): ACK, then BYE."""
        txn, dialog = event.txn, event.dialog
        if (dialog is None or txn.peer is None or txn.method != "INVITE"
                or not 200 <= event.response.status < 300):
            return
        destination = (txn.peer[0], txn.peer[1], txn.transport)
        self.sip.send_ack_2xx(dialog.create_request("ACK"), destination)
        self.sip.send_request(dialog.create_request("BYE"), destination)

    def _provisional(self, leg: SipLeg, fork: Fork, event: sip.ResponseReceived) -> None:
        fork.dialog = event.dialog or fork.dialog
        if leg.state is not LegState.CALLING and not event.response.body:
            return
        early_media = bool(event.response.body) and self._take_answer(leg, event.response)
        leg.state = LegState.RINGING
        self._emit(LegRinging(leg), default=lambda: self._ringing_default(leg, early_media))

    def _fork_answered(self, leg: SipLeg, fork: Fork, event: sip.ResponseReceived) -> None:
        dialog = event.dialog
        if dialog is None:
            return
        ack = dialog.create_request("ACK")
        self.sip.send_ack_2xx(ack, fork.destination)
        fork.done = True
        self.legs.drop_fork(event.txn)
        if leg.answered or leg.ended:  # a second fork answered too late: ACK then BYE
            self.sip.send_request(dialog.create_request("BYE"), fork.destination)
            return
        self.legs.set_dialog(leg, dialog)
        leg.destination, leg.invite = fork.destination, fork.request
        self._take_answer(leg, event.response)
        self.legs.cancel_forks(leg)
        self.legs.stop_ring_timer(leg)
        leg.state = LegState.ANSWERED
        self._log(leg).info("%s answered", leg.number)
        self.publish(leg, "leg.answered", number=leg.number)
        self._emit(LegAnswered(leg), default=lambda: self._answered_default(leg))

    def _take_answer(self, leg: SipLeg, response: Response) -> bool:
        try:
            answer = SessionDescription.parse(response.body)
            media = negotiate(answer, codecs.allowed(self.config, leg.extension), secure=True)
            if leg.srtp is not None:
                srtp_policy.on_answer(leg.srtp, answer, media)
            leg.media = media
        except (SdpNegotiationError, SipParseError, ValueError) as exc:
            self._log(leg).warning("unusable SDP answer from %s: %s", leg.number, exc)
            return False
        self.legs.apply_remote(leg)
        return True

    def _ring_timeout(self, leg: SipLeg) -> None:
        leg.ring_timer = None
        if leg.answered or leg.ended:
            return
        self.legs.cancel_forks(leg)
        self._failed(leg, "no_answer", 408)

    def _on_client_failure(self, txn) -> None:
        found = self.legs.drop_fork(txn)
        if found is None:
            lost = self.direct.on_failure(txn)  # our re-INVITE: the phone is gone
            if lost is not None:
                self._leg_gone(lost, bye=True)
            return
        leg, fork = found
        fork.done = True
        if not leg.answered and not leg.ended and all(f.done for f in leg.forks):
            self._failed(leg, "no_answer", 408)

    def _failed(self, leg: SipLeg, condition: str, status: int) -> None:
        if leg.answered or leg.ended:
            return
        self.legs.stop_ring_timer(leg)
        step = next_step(self.config.extensions, leg.number, condition, leg.hops)
        self._log(leg).info("%s failed: %s (%d), failover %s", leg.number, condition, status,
                            step.action.action)
        self.publish(leg, "leg.failed", number=leg.number, condition=condition, status=status,
                     action=step.action.action)
        if step.action.action == "forward":
            self._forward(leg, step.action.to)
            return
        self.legs.end(leg)
        self._emit(LegFailed(leg, condition, step.action, status),
                   default=lambda: self._failed_default(leg, condition, step.action, status))

    def _forward(self, leg: SipLeg, number: str) -> None:
        for fork in leg.forks:
            self.legs.drop_fork(fork.txn)
        leg.forks, leg.hops, leg.number = [], leg.hops + 1, number
        leg.extension = self.config.extensions.get(number)
        leg.state = LegState.CALLING
        self._invite_contacts(leg)

    # ================================================================== the ordinary call

    def _ringing_default(self, callee: SipLeg, early_media: bool) -> None:
        caller = callee.caller
        if caller is None or caller.answered or caller.ended or not caller.inbound:
            return
        if early_media:
            self._provisional_to_caller(caller, 183, with_sdp=True)
            self.topology.bridge(caller, callee)
        else:
            self._provisional_to_caller(caller, 180, with_sdp=False)

    def _answered_default(self, callee: SipLeg) -> None:
        caller = callee.caller
        if caller is None or caller.ended:
            self.hangup(callee)
            return
        self.answer(caller)
        self.topology.bridge(caller, callee)
        self.listener(CallAnswered(caller, callee))

    def _failed_default(self, callee: SipLeg, condition: str, action: FailoverAction,
                        status: int) -> None:
        caller = callee.caller
        if caller is None or caller.ended:
            return
        if action.action == "announce":
            self.answer(caller)
            self.play_prompt(caller, action.prompt or "unavailable",
                             then=lambda: self.hangup(caller))
        elif action.action == "voicemail":
            self.answer(caller)
            self.voicemail(caller, callee.number)
        else:
            code, reason = (status, None) if action.action == "hangup" else \
                CONDITION_STATUS[condition]
            self.hangup(caller, code, reason)

    def _provisional_to_caller(self, caller: SipLeg, status: int, with_sdp: bool) -> None:
        if caller.invite is None or caller.invite_txn is None:
            return
        response = make_response(caller.invite, status, to_tag=caller.tag,
                                 headers=[("Contact", self.legs.contact(caller.destination))])
        if with_sdp:
            self.legs.attach_answer(caller, response)
        caller.state = LegState.RINGING
        self.legs.respond(caller.invite_txn, response)

    def answer(self, leg: SipLeg) -> None:
        """200 OK to an inbound leg's INVITE with our SDP answer."""
        self.legs.answer(leg)

    # ================================================================== in-dialog requests

    def _in_dialog(self, leg: SipLeg, txn, request: Request) -> None:
        method = request.method
        if method == "BYE":
            self.legs.respond(txn, make_response(request, 200))
            self._log(leg).info("%s hung up", leg.number)
            self._leg_gone(leg)
        elif method in ("INVITE", "UPDATE") and request.body:
            self._reinvite(leg, txn, request)
        elif method in ("INVITE", "UPDATE", "INFO", "OPTIONS", "NOTIFY"):
            response = make_response(request, 200)
            if method == "INVITE":
                response.headers.set("Contact", self.legs.contact(leg.destination))
                self._attach_current_sdp(leg, response)
            self.legs.respond(txn, response)
        elif method == "REFER":
            self.transfers.on_refer(leg, txn, request)
        else:
            self.legs.respond(txn, make_response(request, 501))

    def _reinvite(self, leg: SipLeg, txn, request: Request) -> None:
        try:
            offer = SessionDescription.parse(request.body)
            media = negotiate(offer, codecs.allowed(self.config, leg.extension), secure=True)
            leg.srtp = srtp_policy.on_offer(offer, media, srtp_policy.policy_of(leg.extension),
                                            leg.srtp)
        except (SdpNegotiationError, SipParseError, ValueError):
            self.legs.respond(txn, make_response(request, 488))
            return
        leg.media = media
        leg.sdp_version += 1
        self.legs.apply_remote(leg)
        hold = is_hold(offer)
        self.direct.phone_reinvite(leg, request.method)  # our answer anchors it again
        sdp = build_answer(offer, media, self.config.rtp.address,
                           self.engine.local_port(leg.stream), leg.session_id, leg.sdp_version)
        srtp_policy.secure_answer(leg.srtp, sdp, offer, media)
        response = make_response(request, 200, headers=[
            ("Contact", self.legs.contact(leg.destination)), ("Content-Type", "application/sdp")])
        response.body = sdp.to_bytes()
        self.legs.respond(txn, response)
        if hold != leg.remote_hold:
            self._phone_hold(leg, hold)

    def _attach_current_sdp(self, leg: SipLeg, response: Response) -> None:
        if leg.media is None:
            return
        sdp = build_offer(self.config.rtp.address, self.engine.local_port(leg.stream),
                          [leg.media.codec], leg.media.event_pt, session_id=leg.session_id,
                          version=leg.sdp_version)
        if leg.srtp is not None:
            srtp_policy.secure_offer(leg.srtp, sdp)
        response.headers.set("Content-Type", "application/sdp")
        response.body = sdp.to_bytes()

    def _phone_hold(self, leg: SipLeg, hold: bool) -> None:
        """The phone put its call on hold (or resumed): its peer hears MoH (or it again)."""
        leg.remote_hold = hold
        self.engine.set_direction(leg.stream, send=not hold, recv=True)
        if hold:
            peer = self.topology.peer_of(leg)
            if peer is not None:
                leg.held_peer = peer
                self.hold(peer)
                self._log(leg).info("%s put %s on hold", leg.number, peer.number)
        else:
            peer, leg.held_peer = leg.held_peer, None
            if peer is not None and not peer.ended and self.topology.hears(peer).kind == "moh":
                self.topology.bridge(leg, peer)
                self._log(leg).info("%s resumed the call with %s", leg.number, peer.number)

    # ================================================================== actions

    def hangup(self, leg: SipLeg, status: int = 0, reason: str | None = None) -> None:
        """BYE an answered leg, CANCEL a ringing outbound one, reject an unanswered inbound one."""
        self.legs.hangup(leg, status, reason)

    def end_from_outside(self, legs: list[SipLeg]) -> None:
        """Hangs up `legs`, then tells each one's owner (a service session, REFER transfers
        included) that it hung up: the API's hang-up, on the path a phone's BYE takes."""
        live = [leg for leg in legs if not leg.ended]
        for leg in live:
            self.legs.hangup(leg)
        for leg in live:
            self._tell(LegHungUp(leg))

    def hold(self, leg: SipLeg, moh_class: str = "") -> None:
        cls = moh_class or (leg.extension.moh_class if leg.extension else "") or "default"
        if cls not in self.config.moh:
            cls = "default"
        self.topology.moh(leg, cls)

    def play_prompt(self, leg: SipLeg, name: str,
                    then: Callable[[], None] | None = None) -> int:
        return self.legs.play_prompt(leg, name, then)

    def voicemail(self, leg: SipLeg, mailbox: str) -> None:
        Voicemail(self.legs, self.store, leg, mailbox).start()

    def stop_recording(self, leg: SipLeg) -> None:
        """A new media action on a leg ends its voicemail recording (the message is kept)."""
        self.legs.stop_recording(leg)

    # ================================================================== media events

    def _on_dtls(self, stream: int, rtcp: bool, data: bytes, host: str, port: int) -> None:
        leg = self.legs.by_stream(stream)
        if leg is None or leg.srtp is None or leg.ended:
            return
        error = srtp_policy.on_dtls(self.engine, stream, leg.srtp, rtcp, data, host, port)
        if error is not None:
            self._log(leg).warning("DTLS-SRTP with %s: %s", leg.number, error)

    def on_media_event(self, event: media_events.MediaEvent) -> None:
        if isinstance(event, media_events.RecordingFinished):
            voicemail = self.legs.recordings.pop(event.stream, None)
            if voicemail is not None:
                voicemail.finished(event)
            return
        leg = self.legs.by_stream(event.stream)
        if leg is None or leg.ended:
            return
        if isinstance(event, media_events.DtmfReceived):
            self._log(leg).info("digit %s from %s (%s)", event.digit, leg.number, event.source)
            self.listener(DigitReceived(leg, event.digit, event.source))
        elif isinstance(event, media_events.PlayFinished):
            then = self.legs.prompt_done(event.play_id)
            if event.completed and then is not None:
                then()  # the call layer's own sequence (voicemail: greeting, beep, record)
            elif event.completed:  # goes on whoever owns the leg; a service hears of its own
                self._tell(PromptFinished(leg, event.play_id))
        elif isinstance(event, media_events.RtpTimedOut):
            if leg.answered and not leg.remote_hold:
                self._log(leg).warning("no RTP from %s: hanging up", leg.number)
                self._leg_gone(leg, bye=True)

    # ================================================================== leg bookkeeping

    def _emit(self, event: CallEvent, default: Callable[[], None]) -> None:
        if not self._tell(event) and not event.leg.owner:
            default()

    def _tell(self, event: CallEvent) -> bool:
        """The services (the REFER transfers among them) hear the event; True when used."""
        return self.listener(event)

    def _leg_gone(self, leg: SipLeg, notify: bool = True, bye: bool = False) -> None:
        """The far side ended the leg (BYE, CANCEL, timeout): tell its owner, end its peers.
        `bye`: the phone did not say so itself (a timeout), so it is sent a BYE first."""
        if leg.ended:
            return
        peer = self.topology.peer_of(leg)
        group = [m for m in self.topology.group_of(leg) if m is not leg]
        if bye:
            self.legs.hangup(leg)
        else:
            self.legs.end(leg)
        if notify and self._tell(LegHungUp(leg)) or leg.owner:
            return
        dialled_for = leg.caller if not leg.inbound and leg.purpose == "call" else None
        for other in [peer, *group, leg.dialing, dialled_for]:
            if other is not None and not other.ended and not other.owner:
                self.hangup(other)

    def _log(self, leg: SipLeg) -> logging.LoggerAdapter:
        return self.legs.log(leg)

    def publish(self, leg: SipLeg, kind: str, **fields: object) -> None:
        """Hands one event (call lifecycle, transfer states) to every observer."""
        self.legs.publish(leg, kind, **fields)

    def live_legs(self, call_id: str) -> int:
        """How many legs of the call have not ended (for call records)."""
        return self.legs.live_in_call(call_id)

    def leak_report(self) -> dict[str, int]:
        """Live objects, for tests that check nothing leaked."""
        return {**self.legs.leak_report(), "refers": self.transfers.leak_report(),
                "direct": self.direct.leak_report()}


def _worse(a: int, b: int) -> int:
    """Of two fork failures, the one that says most (busy beats unavailable beats others)."""
    rank = {486: 3, 600: 3, 480: 2, 408: 2, 404: 1}
    return a if rank.get(a, 0) >= rank.get(b, 0) and a else b
