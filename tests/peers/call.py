"""A dialog of the TestPhone: state, in-dialog requests (RFC 3261 §12-§15), media.

How this works
--------------
A ``Call`` holds one dialog's identifiers (Call-ID, both tags, CSeqs, remote target, route
set, RFC 3261 §12.1) and builds its in-dialog requests from them (§12.2.1.1). ``state`` goes
init -> calling -> early -> confirmed -> terminated. Hold and resume are re-INVITEs with
``a=sendonly``/``a=sendrecv`` (RFC 3264 §8.4); REFER (RFC 3515) may carry Replaces (RFC 3891);
CANCEL copies the INVITE's branch, Request-URI and To (§9.1). An answered INVITE's 2xx is
retransmitted until the ACK (§13.3.1.4). The transport and transactions live in
``phone.TestPhone``; this module only uses its ``_request``/``_respond``/``_send``/
``_transact``/``_authed`` helpers.
"""

from __future__ import annotations

import asyncio
import secrets
import time
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING
from urllib.parse import quote

from tests.peers import audio, codecs
from tests.peers.rtp import RtpSession
from tests.peers.sipmsg import (
    ANSWER_DIRECTION,
    Msg,
    Sdp,
    build_sdp,
    host_port,
    new_tag,
    parse_sdp,
    uri_of,
)

if TYPE_CHECKING:
    from tests.peers.phone import TestPhone

T1, T2 = 0.5, 4.0
Addr = tuple[str, int]
AuthHeader = tuple[str, str] | None


async def until(predicate: Callable[[], bool], timeout: float, what: Callable[[], str]) -> None:
    """Poll ``predicate`` every 20 ms; AssertionError with ``what()`` after ``timeout``."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(what())
        await asyncio.sleep(0.02)


class Call:
    """One dialog (or attempt) of a TestPhone, with its media."""

    def __init__(self, phone: TestPhone, call_id: str, direction: str) -> None:
        self.phone = phone
        self.call_id = call_id
        self.direction = direction  # "out" or "in"
        self.local_tag = new_tag()
        self.remote_tag: str | None = None
        self.local_hdr = ""
        self.remote_hdr = ""
        self.remote_target = ""
        self.route_set: list[str] = []
        self.local_cseq = secrets.randbelow(1000) + 1
        self.state = "init"  # init, calling, early, confirmed, terminated
        self.final_status: int | None = None
        self.invite: Msg | None = None
        self.ack: Msg | None = None
        self.responses: list[Msg] = []
        self.requests: list[Msg] = []
        self.notifies: list[Msg] = []
        self.remote_sdp: Sdp | None = None
        self.hearing = audio.Hearing()
        self.rtp = RtpSession(phone.tone_hz, self.hearing, phone.host)
        self.rtp.ptime = phone.ptime
        self._sdp_session = secrets.randbelow(10**9)
        self._sdp_version = 0
        self._acked = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    # --- state -----------------------------------------------------------------------------

    def __repr__(self) -> str:
        return f"<Call {self.phone.name} {self.direction} {self.state} {self.call_id[:8]}>"

    def _set_state(self, state: str) -> None:
        self.state = state
        if state == "terminated":
            self.rtp.close()

    async def wait_state(self, *states: str, timeout: float = 5.0) -> None:
        """Wait until the call is in one of ``states``."""
        await until(lambda: self.state in states, timeout,
                    lambda: f"{self!r}: expected state in {states}")

    async def wait_final(self, timeout: float = 10.0) -> int:
        """Wait for the INVITE's final status (outgoing calls) and return it."""
        await until(lambda: self.final_status is not None, timeout,
                    lambda: f"{self!r}: no final response, got {self.provisional}")
        assert self.final_status is not None
        return self.final_status

    @property
    def provisional(self) -> list[int]:
        """Status codes of the provisional responses received, in order."""
        return [r.status for r in self.responses if r.status < 200]

    # --- media -----------------------------------------------------------------------------

    def hears(self) -> set[str]:
        """Identity tones heard on this call now."""
        return self.hearing.tones()

    async def wait_hearing(self, expected: Iterable[str], timeout: float = 3.0) -> None:
        """Wait until this call hears exactly the tones ``expected``."""
        want = set(expected)
        await until(lambda: self.hears() == want, timeout,
                    lambda: f"{self!r} hears {self.hears()}, expected {want}")

    @property
    def dtmf_received(self) -> list[str]:
        """RFC 4733 digits received, one per event."""
        return self.rtp.dtmf_received

    async def send_dtmf(self, digits: str, mode: str = "rfc4733", duration: float = 0.1,
                        gap: float = 0.1) -> None:
        """Send ``digits`` as RFC 4733 events or in-band tones, waiting until they are sent."""
        for digit in digits:
            if mode == "rfc4733":
                if self.rtp.dtmf_pt is None:
                    raise RuntimeError("telephone-event was not negotiated")
                seconds = self.rtp.queue_rfc4733(digit, duration)
            else:
                seconds = self.rtp.queue_inband(digit, duration)
            await asyncio.sleep(seconds + gap)

    def _apply_sdp(self, sdp: Sdp) -> None:
        self.remote_sdp = sdp
        rtp = self.rtp
        rtp.remote = None if sdp.port == 0 or sdp.host == "0.0.0.0" else (sdp.host, sdp.port)
        chosen = self._our_codec(sdp)
        if chosen is not None:
            rtp.set_codec(*chosen)
        rtp.dtmf_pt = sdp.dtmf_pt if self.phone.dtmf_pt is not None else None
        rtp.remote_direction = sdp.direction

    def _our_codec(self, sdp: Sdp) -> tuple[str, int] | None:
        """The first of the remote's formats that we speak: (codec name, its payload type)."""
        for pt in sdp.payloads:
            name = codecs.name_of(sdp.rtpmap.get(pt, ""))
            if name in self.phone.codecs:
                return name, pt
        return None

    def _sdp(self, direction: str, answer_to: Sdp | None = None) -> bytes:
        self._sdp_version += 1
        names = {codecs.STATIC_PT[c]: c for c in self.phone.codecs}
        dtmf = self.phone.dtmf_pt
        if answer_to is not None:
            chosen = self._our_codec(answer_to)
            names = {chosen[1]: chosen[0]} if chosen else {}
            dtmf = answer_to.dtmf_pt if dtmf is not None else None
        self.rtp.local_direction = direction
        return build_sdp(self.phone.host, self.rtp.port, list(names), dtmf, direction,
                         self._sdp_session, self._sdp_version,
                         {pt: codecs.RTPMAP[c] for pt, c in names.items()},
                         {pt: codecs.FMTP[c] for pt, c in names.items() if c in codecs.FMTP},
                         self.rtp.ptime)

    # --- in-dialog requests ----------------------------------------------------------------

    def _build(self, method: str, extra: list[tuple[str, str]], body: bytes = b"",
               ctype: str = "application/sdp", cseq: int | None = None) -> Msg:
        if cseq is None:
            self.local_cseq += 1
        routes = [("Route", r) for r in self.route_set]
        return self.phone._request(method, self.remote_target, self.local_hdr, self.remote_hdr,
                                   self.call_id, cseq or self.local_cseq, routes + extra, body,
                                   ctype)

    def _dest(self) -> Addr:
        if self.phone.server:
            return self.phone.server
        return host_port(uri_of(self.route_set[0]) if self.route_set else self.remote_target)

    async def request(self, method: str, extra: list[tuple[str, str]] | None = None,
                      body: bytes = b"", ctype: str = "application/sdp") -> Msg:
        """Send an in-dialog request (with digest retry); return the final response."""
        def build(auth: AuthHeader) -> Msg:
            return self._build(method, (extra or []) + ([auth] if auth else []), body, ctype)
        msg, resp = await self.phone._authed(build, self._dest())
        if method == "INVITE" and resp.status < 300:
            self._confirm_reinvite(msg, resp)
        return resp

    def _confirm_reinvite(self, msg: Msg, resp: Msg) -> None:
        if resp.body:
            self._apply_sdp(parse_sdp(resp.body))
        ack = self._build("ACK", [], cseq=msg.cseq[0])
        self.phone._send(ack, self._dest())

    async def hold(self) -> int:
        """Re-INVITE with ``a=sendonly`` (RFC 3264 §8.4); this phone stops sending."""
        self.rtp.muted = True
        resp = await self.request("INVITE", self._contact(), self._sdp("sendonly"))
        return resp.status

    async def unhold(self) -> int:
        """Re-INVITE with ``a=sendrecv``; this phone sends its tone again."""
        resp = await self.request("INVITE", self._contact(), self._sdp("sendrecv"))
        self.rtp.muted = False
        return resp.status

    def _contact(self) -> list[tuple[str, str]]:
        return [("Contact", self.phone.contact)]

    async def options(self) -> int:
        """In-dialog OPTIONS; returns the status."""
        return (await self.request("OPTIONS", [("Accept", "application/sdp")])).status

    async def refer(self, target: str, replaces: Call | None = None, refer_sub: bool = True) -> int:
        """REFER (RFC 3515) to ``target``, with RFC 3891 Replaces naming ``replaces``' dialog."""
        refer_to = target
        if replaces is not None:
            rep = (f"{replaces.call_id};to-tag={replaces.remote_tag};"
                   f"from-tag={replaces.local_tag}")
            refer_to = f"{target}?Replaces={quote(rep, safe='')}"
        extra = [("Refer-To", f"<{refer_to}>"), ("Referred-By", f"<{self.phone.aor}>"),
                 *self._contact()]
        if not refer_sub:
            extra.append(("Refer-Sub", "false"))
        return (await self.request("REFER", extra)).status

    async def wait_notify(self, text: str, timeout: float = 5.0) -> Msg:
        """Wait for a NOTIFY whose body contains ``text`` (e.g. ``"SIP/2.0 200"``)."""
        def found() -> Msg | None:
            return next((n for n in self.notifies if text.encode() in n.body), None)
        await until(lambda: found() is not None, timeout,
                    lambda: f"{self!r}: no NOTIFY with {text!r}: {[n.body for n in self.notifies]}")
        result = found()
        assert result is not None
        return result

    async def hangup(self) -> None:
        """BYE when confirmed; CANCEL an outgoing attempt; 486 an unanswered incoming one."""
        if self.state == "confirmed":
            self._set_state("terminated")
            await self.request("BYE")
        elif self.direction == "out" and self.state in ("calling", "early"):
            await self._cancel()
        elif self.direction == "in" and self.state == "early":
            await self.reject(486)

    async def _cancel(self) -> None:
        await self.wait_state("early", "confirmed", "terminated", timeout=T1 * 64)
        if self.state != "early" or self.invite is None:
            return await self.hangup()
        inv = self.invite
        cancel = Msg(f"CANCEL {inv.uri} SIP/2.0", [(k, v) for k, v in inv.headers
                     if k.lower() in ("via", "from", "to", "call-id", "max-forwards", "route")])
        cancel.headers.append(("CSeq", f"{inv.cseq[0]} CANCEL"))
        await self.phone._transact(cancel, self._dest())
        await self.wait_state("terminated", "confirmed", timeout=T1 * 64)
        if self.state == "confirmed":  # 200 crossed the CANCEL: end it properly
            await self.hangup()

    # --- answering (incoming) -------------------------------------------------------------

    async def ring(self, code: int = 180) -> None:
        """Send a provisional response (180, or 183 without SDP)."""
        assert self.invite is not None
        self.phone._respond(self.invite, code, to_tag=self.local_tag, extra=self._contact())

    async def answer(self) -> None:
        """Answer an incoming call with 200 and SDP; retransmit it until the ACK."""
        assert self.invite is not None and self.state == "early"
        offer = self.remote_sdp
        body = self._sdp(ANSWER_DIRECTION[offer.direction] if offer else "sendrecv", offer)
        self._set_state("confirmed")
        self.rtp.sending = True
        self._send_2xx(self.invite, body)

    def _send_2xx(self, invite: Msg, body: bytes) -> None:
        self._acked.clear()
        resp = self.phone._respond(invite, 200, to_tag=self.local_tag, extra=self._contact(),
                                   body=body)
        self._task = asyncio.create_task(self._retransmit_2xx(resp))

    async def _retransmit_2xx(self, resp: Msg) -> None:
        interval = T1
        for _ in range(10):  # 64·T1 in all (RFC 3261 §13.3.1.4)
            try:
                await asyncio.wait_for(self._acked.wait(), interval)
                return
            except TimeoutError:
                self.phone._send(resp, self.phone._source_of[resp.branch])
                interval = min(2 * interval, T2)

    async def reject(self, code: int = 486) -> None:
        """Reject an incoming call with ``code``."""
        assert self.invite is not None
        self.phone._respond(self.invite, code, to_tag=self.local_tag)
        self.final_status = code
        self._set_state("terminated")


