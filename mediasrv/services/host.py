"""The service host: feature codes on ordinary calls, and events routed to service sessions.

How this works (transfer spec, "Codes and the DTMF path"): the server makes one `ServiceHost`
from the enabled `ServiceConfig`s and gives it every `CallEvent` (`handle`). On `CallAnswered`
each leg of the new two-party call that belongs to an internal extension allowed to use at
least one enabled service gets a `CodeMatcher` over the start codes it may dial, and the engine
is told to hold its DTMF back (`hold_back_dtmf`), so every digit of that leg goes through the
host: digits that may start a code wait, all others go on to the peer at once (`send_dtmf`).
External legs (no extension) and legs with direct media (their RTP, so their DTMF, never
reaches the server) get no matcher; the engine forwards their DTMF.

A matched start code calls `Service.start(leg, peer)`. From then the session owns the legs and
gets their events first; a digit it does not use is passed on to the leg's peer. The other
party of a call a session owns cannot start a second service (one transfer per call): its
digits, `#4` included, pass through. When a session ends, the legs it left talking to each
other are an ordinary call again and get matchers anew.

`configure()` (a reload) makes new service instances for new calls; sessions and matchers of
calls already up keep the instances and codes they started with.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable

from mediasrv.call.api import (
    CallAnswered,
    CallControl,
    CallEvent,
    DigitReceived,
    Leg,
    LegHungUp,
    TransferRequested,
)
from mediasrv.config import Extension, ServiceConfig
from mediasrv.services.base import Service, Session
from mediasrv.services.codes import DEFAULT_FEATURE_DIGIT_TIMEOUT, CodeMatcher, Codes
from mediasrv.services.refer_transfer import ReferTransfer
from mediasrv.services.registry import service_class

log = logging.getLogger("mediasrv.services")


class ServiceHost:
    """Owns the per-leg start-code matching and routes events to service sessions."""

    def __init__(self, control: CallControl, configs: Iterable[ServiceConfig]) -> None:
        self.control = control
        self.services: dict[str, Service] = {}
        self._retired: list[Service] = []
        self._matchers: dict[str, CodeMatcher[Service]] = {}
        self._held_back: set[str] = set()
        self.refer = ReferTransfer(control)  # built in: a phone's own Transfer key (REFER)
        self.refer.session_ended = self._session_ended
        self.configure(configs)

    def configure(self, configs: Iterable[ServiceConfig]) -> None:
        """Instantiates the enabled services; the previous ones finish their sessions."""
        self._retired += [s for s in self.services.values() if s.busy]  # sessions go on
        services = {}
        for cfg in configs:
            if cfg.enabled:
                service = service_class(cfg.name, cfg.module, cfg.file)(self.control, cfg)
                service.session_ended = self._session_ended
                services[cfg.name] = service
        self.services = services
        self._codes: dict[str, tuple[Extension, Codes[Service], float]] = {}  # by number

    def handle(self, event: CallEvent) -> bool:
        """Feeds one call event; True when a service or the code matcher used it."""
        owner = self._owner_of(event.leg)
        if owner is not None:
            if owner.handle(event):
                return True
            if isinstance(event, DigitReceived):
                return self._pass_on(event.leg, event.digit)
            return False
        if isinstance(event, TransferRequested):
            for leg in (event.leg, event.party):
                self.detach(leg)
            return self.refer.transfer(event, joined=self._joined)
        if isinstance(event, CallAnswered):
            self.attach(event.leg)
            self.attach(event.peer)
            return True
        if isinstance(event, DigitReceived):
            return self._digit(event)
        if isinstance(event, LegHungUp):
            self.detach(event.leg)
            self._held_back.discard(event.leg.id)
        return False

    def attach(self, leg: Leg) -> None:
        """Starts watching `leg` for the start codes its extension may dial."""
        self.detach(leg)
        ext = leg.extension
        if ext is None or ext.direct_media or leg.ended:  # direct media: no DTMF reaches us
            self._release_dtmf(leg)
            return
        codes, timeout = self._start_codes(ext)
        if not codes.values:
            self._release_dtmf(leg)
            return
        self._matchers[leg.id] = CodeMatcher(
            self.control, leg, codes, timeout=timeout,
            on_code=lambda svc: self._start(leg, svc),
            forward=lambda digits: self._pass_on(leg, digits))
        self._held_back.add(leg.id)
        self.control.hold_back_dtmf(leg, True)

    def _start_codes(self, ext: Extension) -> tuple[Codes[Service], float]:
        """The start codes `ext` may dial and their digit timeout, worked out once per
        extension and services (two legs per call ask)."""
        known = self._codes.get(ext.number)
        if known is not None and known[0] is ext:
            return known[1], known[2]
        codes = Codes({svc.codes["start"]: svc for svc in self.services.values()
                       if "start" in svc.codes and ext.may_use(svc.name)})
        timeout = min((float(s.setting("timers", "feature_digit_timeout",
                                       DEFAULT_FEATURE_DIGIT_TIMEOUT))
                       for s in codes.values.values()), default=DEFAULT_FEATURE_DIGIT_TIMEOUT)
        self._codes[ext.number] = (ext, codes, timeout)
        return codes, timeout

    def detach(self, leg: Leg) -> None:
        """Stops watching `leg` (it ended, or a session took it)."""
        self._drop_matcher(leg.id)

    def _drop_matcher(self, leg_id: str) -> None:
        matcher = self._matchers.pop(leg_id, None)
        if matcher is not None:
            matcher.cancel()

    def forget(self, leg_id: str) -> None:
        """Drops what is kept for an ended leg: its matcher and its held-back flag."""
        self._drop_matcher(leg_id)
        self._held_back.discard(leg_id)

    def observe(self, event: dict[str, object]) -> None:
        """A B2BUA observer: every leg that ends is forgotten, also the ones the B2BUA
        hangs up itself (the peer of a leg that hung up gets no LegHungUp)."""
        if event["kind"] == "leg.ended":
            self.forget(str(event["leg"]))

    @property
    def watched(self) -> int:
        """Legs with a code matcher (0 once every call has ended)."""
        return len(self._matchers)

    @property
    def pending_timers(self) -> int:
        """How many matchers hold digits (each with a timer armed); 0 when idle."""
        return sum(1 for m in self._matchers.values() if m.held)

    # ------------------------------------------------------------------ internals

    def _owner_of(self, leg: Leg) -> Service | None:
        """The service whose session owns `leg` (the call layer keeps the one record)."""
        owner = self.control.owner_of(leg)
        return owner.service if isinstance(owner, Session) else None

    def _digit(self, event: DigitReceived) -> bool:
        matcher = self._matchers.get(event.leg.id)
        if matcher is None:
            return self._pass_on(event.leg, event.digit)
        matcher.feed(event.digit, event.source)
        return True

    def _pass_on(self, leg: Leg, digits: str) -> bool:
        """Sends digits the engine held back on to whoever the leg talks to."""
        if leg.id not in self._held_back:
            return False  # the engine forwards this leg's DTMF itself
        peer = self.control.peer_of(leg)
        if peer is not None:
            self.control.send_dtmf(peer, digits)
        return True

    def _start(self, leg: Leg, service: Service) -> None:
        peer = self.control.peer_of(leg)
        code = service.codes["start"]
        if peer is None or self._owner_of(peer) is not None:
            log.info("%s from leg %s ignored: no call to act on, or one already in a service",
                     code, leg.id)
            self._pass_on(leg, code)
            return
        peer_matcher = self._matchers.get(peer.id)
        if peer_matcher is not None:
            peer_matcher.flush()
        if not service.start(leg, peer):
            self._pass_on(leg, code)
            return
        for party in (leg, peer):
            if service.owns(party):  # a session took it; a one-shot service leaves it be
                self.detach(party)
        if service.busy and service not in [*self.services.values(), *self._retired]:
            self._retired.append(service)  # a call from before a reload

    def _session_ended(self, session: Session, legs: list[Leg]) -> None:
        self._retired = [s for s in self._retired if s.busy]
        kept = {leg.id for leg in legs}
        self._held_back -= {leg.id for leg in session.legs if leg.id not in kept}
        for leg in legs:
            self.attach(leg)

    def _joined(self, legs: list[Leg]) -> None:
        """Two parties a service joined outright are an ordinary call: they get matchers."""
        for leg in legs:
            self.attach(leg)

    def _release_dtmf(self, leg: Leg) -> None:
        if leg.id in self._held_back:
            self._held_back.discard(leg.id)
            self.control.hold_back_dtmf(leg, False)
