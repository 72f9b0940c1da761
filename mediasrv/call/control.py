"""`CallControl` for services, carried out by the B2BUA and the media topology.

How this works: each method of `mediasrv.call.api.CallControl` is a thin call into the
B2BUA (signalling: dial, hang up, answer), the `Topology` (who hears what) or the engine
(DTMF, mute). Every method is a no-op on an ended leg, so a service racing a hang-up never
acts on a dead leg. Events published by services are logged with the call id and handed to
the `publish` hook (the API's event stream and metrics subscribe there).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping

from mediasrv.call.api import Owner, Timer
from mediasrv.call.b2bua import B2BUA
from mediasrv.call.leg import SipLeg
from mediasrv.config import Extension
from mediasrv.logs import call_logger

log = logging.getLogger("mediasrv.services")


class ServiceControl:
    def __init__(self, b2bua: B2BUA) -> None:
        self.b2bua = b2bua
        self.topology = b2bua.topology
        self.engine = b2bua.engine

    def peer_of(self, leg: SipLeg) -> SipLeg | None:
        return self.topology.peer_of(leg)

    def extensions(self) -> Mapping[str, Extension]:
        return self.b2bua.config.extensions

    # ------------------------------------------------------------------ media

    def bridge(self, a: SipLeg, b: SipLeg) -> None:
        if not (a.ended or b.ended):
            self._retarget(a, b)
            self.topology.bridge(a, b)

    def mix(self, legs: list[SipLeg]) -> None:
        live = [leg for leg in legs if not leg.ended]
        self._retarget(*live)
        if len(live) >= 3:
            self.topology.mix(live)
        elif len(live) == 2:
            self.topology.bridge(*live)

    def hold(self, leg: SipLeg, moh_class: str = "") -> None:
        if not leg.ended:
            self._retarget(leg)
            self.b2bua.hold(leg, moh_class)

    def play_prompt(self, leg: SipLeg, name: str) -> int:
        if leg.ended:
            return -1
        self._retarget(leg)
        return self.b2bua.play_prompt(leg, name)

    def play_tone(self, leg: SipLeg, tone: str) -> None:
        if not leg.ended:
            self._retarget(leg)
            self.topology.tone(leg, tone)

    def silence(self, leg: SipLeg) -> None:
        if not leg.ended:
            self._retarget(leg)
            self.topology.silence(leg)

    def _retarget(self, *legs: SipLeg) -> None:
        """A leg given something new to hear stops being recorded to voicemail."""
        for leg in legs:
            self.b2bua.stop_recording(leg)

    def send_dtmf(self, leg: SipLeg, digits: str) -> None:
        if not leg.ended:
            for digit in digits:
                self.engine.send_dtmf(leg.stream, digit)

    def mute(self, leg: SipLeg, muted: bool) -> None:
        if not leg.ended:
            self.engine.set_mute(leg.stream, muted)

    def hold_back_dtmf(self, leg: SipLeg, on: bool) -> None:
        if not leg.ended:
            mode = leg.extension.dtmf if leg.extension else "auto"
            self.engine.set_dtmf(leg.stream, mode=mode, forward=not on)

    # ------------------------------------------------------------------ signalling

    def dial(self, number: str, *, caller: SipLeg, purpose: str,
             failover: bool = True, replaces: str = "") -> SipLeg:
        return self.b2bua.dial(number, caller=caller, purpose=purpose, failover=failover,
                               replaces=replaces)

    def hangup(self, leg: SipLeg, status: int = 0) -> None:
        self.b2bua.hangup(leg, status)

    def end_from_outside(self, legs: list[SipLeg]) -> None:
        """The operator ends `legs` (the API): each is hung up, then every owner of one (a
        REFER transfer, a service session) is told it hung up, as when its phone hangs up."""
        self.b2bua.end_from_outside(legs)

    def take_over(self, leg: SipLeg, owner: Owner) -> None:
        leg.owner = owner

    def release(self, leg: SipLeg, owner: Owner) -> None:
        if leg.owner is owner:
            leg.owner = None
            leg.purpose = "call"

    def owner_of(self, leg: SipLeg) -> Owner | None:
        return leg.owner

    def voicemail(self, leg: SipLeg, mailbox: str) -> None:
        if not leg.ended:
            self.b2bua.voicemail(leg, mailbox)

    def transfer_progress(self, leg: SipLeg, status: int) -> None:
        self.b2bua.transfers.progress(leg, status)

    def schedule(self, delay: float, callback: Callable[[], None]) -> Timer:
        return self.b2bua.clock.call_later(delay, callback)

    def publish(self, leg: SipLeg, kind: str, **fields: object) -> None:
        detail = " ".join(f"{k}={v}" for k, v in fields.items())
        call_logger(log, leg.call_id).info("%s %s leg=%s", kind, detail, leg.id)
        self.b2bua.publish(leg, kind, **fields)
