"""TestPhone: a minimal, independent SIP UA over UDP with an identity-tone RTP stream.

How this works
--------------
The phone is written from RFC 3261 directly and shares no code with ``mediasrv``: the server
is tested against a second reading of the RFCs. It is small on purpose.

* Transport: one UDP socket (port 0). Responses go back to the request's source address
  (RFC 3581 rport behaviour); requests go to ``server`` when one is set (an outbound proxy,
  RFC 3261 §8.1.2), otherwise to the host:port of the Request-URI / remote target.
* Client transactions (§17.1): the request is retransmitted from T1 doubling (to T2 for
  non-INVITE; INVITE stops at the first provisional, Timer A/B), the first final response
  completes it. A 401/407 is answered once with digest credentials (§22.2, §22.3), a new
  branch and CSeq+1; a non-2xx final to INVITE is ACKed on the INVITE's branch (§17.1.1.3).
* Server side (§17.2): a retransmitted request gets the cached response again; a 2xx to
  INVITE is retransmitted until the ACK arrives (§13.3.1.4).
* Dialogs (§12): a ``Call`` holds Call-ID, both tags, CSeqs, remote target and route set;
  in-dialog requests (BYE, re-INVITE, REFER, OPTIONS) are built from them; ACK for 2xx is its
  own transaction (§13.2.2.4). CANCEL (§9.1) copies the INVITE's branch, Request-URI, To.
* Media: each call has an ``RtpSession`` sending the phone's identity tone
  (``audio.TONE_HZ[name]``) and a ``Hearing`` of what arrives. Hold is RFC 3264 §8.4
  (``a=sendonly``); the holding phone goes quiet, as real phones do.

Every SIP message sent or received is logged in ``phone.events`` with a monotonic timestamp,
so tests can measure latencies (e.g. INVITE sent by A -> INVITE received by B).
"""

from __future__ import annotations

import asyncio
import secrets
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from tests.peers import audio
from tests.peers.call import T1, T2, Call, until
from tests.peers.sipmsg import (
    ANSWER_DIRECTION,
    Msg,
    digest_authorization,
    host_port,
    new_branch,
    new_tag,
    parse,
    parse_sdp,
    pick_challenge,
    tag_of,
    uri_of,
)

REASONS = {100: "Trying", 180: "Ringing", 183: "Session Progress", 200: "OK", 202: "Accepted",
           400: "Bad Request", 403: "Forbidden", 404: "Not Found", 480: "Temporarily Unavailable",
           481: "Call/Transaction Does Not Exist", 486: "Busy Here", 487: "Request Terminated",
           488: "Not Acceptable Here", 501: "Not Implemented", 603: "Decline"}
ALLOW = "INVITE, ACK, CANCEL, BYE, OPTIONS, NOTIFY, REFER, INFO"
Addr = tuple[str, int]
AuthHeader = tuple[str, str] | None


@dataclass(frozen=True)
class SipEvent:
    """One SIP message seen by a phone: ``label`` is the method or ``"<code> <method>"``."""

    t: float
    direction: str  # "rx" or "tx"
    label: str
    call_id: str


class _SipProtocol(asyncio.DatagramProtocol):
    def __init__(self, phone: TestPhone) -> None:
        self.phone = phone

    def datagram_received(self, data: bytes, addr: Addr) -> None:
        self.phone._on_datagram(data, addr)


class TestPhone:
    """A SIP phone for tests: register, call, answer, hold, DTMF, REFER, and hear.

    ``name`` picks the identity tone (``audio.TONE_HZ``). ``server`` is where every request
    goes (None: straight to the Request-URI). ``answer`` is the code incoming calls get
    automatically after ``answer_after`` seconds (200 answers, 486 busy, ...; None: ring only
    and let the test call ``answer()``/``reject()``).
    """

    __test__ = False  # not a pytest class

    def __init__(self, name: str = "A", user: str | None = None, password: str | None = None, *,
                 server: Addr | None = None, domain: str | None = None, host: str = "127.0.0.1",
                 answer: int | None = 200, answer_after: float = 0.0, ring: bool = True,
                 codecs: Iterable[str] = ("PCMU", "PCMA"), dtmf_pt: int | None = 101,
                 ptime: int = 20) -> None:
        self.name = name
        self.user = user or name.lower()
        self.password = password
        self.server = server
        self.domain = domain or (server[0] if server else host)
        self.host = host
        self.answer_code = answer
        self.answer_after = answer_after
        self.ring = ring
        self.codecs = [c.upper() for c in codecs]       # peers.codecs.NAMES, offer order
        self.ptime = ptime
        self.dtmf_pt = dtmf_pt
        self.tone_hz: tuple[float, ...] = (audio.TONE_HZ[name],) if name in audio.TONE_HZ else ()
        self.events: list[SipEvent] = []
        self.calls: list[Call] = []
        self.incoming: asyncio.Queue[Call] = asyncio.Queue()
        self.received: list[Msg] = []
        self._transport: asyncio.DatagramTransport | None = None
        self._clients: dict[tuple[str, str], asyncio.Queue[Msg]] = {}
        self._server_cache: dict[tuple[str, str], Msg] = {}
        self._source_of: dict[str, Addr] = {}
        self._reg_call_id = secrets.token_hex(10)
        self._reg_cseq = 0
        self._tasks: set[asyncio.Task[None]] = set()

    # --- lifecycle -------------------------------------------------------------------------

    async def start(self) -> TestPhone:
        """Bind the SIP socket (port 0)."""
        loop = asyncio.get_running_loop()
        self._transport, _ = await loop.create_datagram_endpoint(
            lambda: _SipProtocol(self), local_addr=(self.host, 0))
        return self

    async def close(self) -> None:
        """Stop all media and tasks and close every socket (no BYE is sent)."""
        for call in self.calls:
            call._set_state("terminated")
            if call._task:
                call._task.cancel()
        for task in self._tasks:
            task.cancel()
        if self._transport:
            self._transport.close()
            self._transport = None

    async def __aenter__(self) -> TestPhone:
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    @property
    def port(self) -> int:
        """The local SIP port."""
        assert self._transport is not None, "start() the phone first"
        return self._transport.get_extra_info("sockname")[1]

    @property
    def aor(self) -> str:
        """Address of record, ``sip:user@domain``."""
        return f"sip:{self.user}@{self.domain}"

    @property
    def uri(self) -> str:
        """Where this phone can be called directly (no server)."""
        return f"sip:{self.user}@{self.host}:{self.port}"

    @property
    def contact(self) -> str:
        """The Contact header value."""
        return f"<{self.uri}>"

    # --- hearing ---------------------------------------------------------------------------

    def active_calls(self) -> list[Call]:
        """Calls ringing or answered."""
        return [c for c in self.calls if c.state in ("early", "confirmed")]

    def hears(self) -> set[str]:
        """Identity tones heard now, over all active calls."""
        return set().union(*(c.hears() for c in self.active_calls()))

    def hears_freqs(self, freqs: Iterable[float]) -> bool:
        """True if some active call hears all of ``freqs`` (e.g. ringback, MoH test tone)."""
        freqs = list(freqs)
        return any(c.hearing.present(freqs) for c in self.active_calls())

    def is_silent(self) -> bool:
        """True if no active call hears anything audible."""
        return all(c.hearing.is_silent() for c in self.active_calls())

    async def wait_hearing(self, expected: Iterable[str], timeout: float = 3.0) -> None:
        """Wait until the phone hears exactly the identity tones ``expected``."""
        want = set(expected)
        await until(lambda: self.hears() == want, timeout,
                    lambda: f"phone {self.name} hears {self.hears()}, expected {want}")

    async def wait_freqs(self, freqs: Iterable[float], timeout: float = 3.0) -> None:
        """Wait until some active call hears all of ``freqs``."""
        freqs = list(freqs)
        await until(lambda: self.hears_freqs(freqs), timeout,
                    lambda: f"phone {self.name} does not hear {freqs}")

    def event_times(self, label: str, direction: str = "rx") -> list[float]:
        """Monotonic times of SIP events with ``label`` (``"INVITE"``, ``"200 INVITE"``, ...)."""
        return [e.t for e in self.events if e.label == label and e.direction == direction]

    # --- sending ---------------------------------------------------------------------------

    def _send(self, msg: Msg, addr: Addr) -> None:
        assert self._transport is not None
        label = msg.method if msg.is_request else f"{msg.status} {msg.method}"
        self.events.append(SipEvent(time.monotonic(), "tx", label, msg.call_id))
        self._transport.sendto(bytes(msg), addr)

    def _request(self, method: str, uri: str, from_: str, to: str, call_id: str, cseq: int,
                 extra: Iterable[tuple[str, str]] = (), body: bytes = b"",
                 ctype: str = "application/sdp") -> Msg:
        via = f"SIP/2.0/UDP {self.host}:{self.port};branch={new_branch()};rport"
        msg = Msg(f"{method} {uri} SIP/2.0",
                  [("Via", via), ("Max-Forwards", "70"), ("From", from_), ("To", to),
                   ("Call-ID", call_id), ("CSeq", f"{cseq} {method}"),
                   ("User-Agent", f"mediasrv-testphone {self.name}"), *extra], body)
        if body:
            msg.headers.append(("Content-Type", ctype))
        return msg

    def _respond(self, req: Msg, code: int, to_tag: str | None = None,
                 extra: Iterable[tuple[str, str]] = (), body: bytes = b"") -> Msg:
        to = req.get("To")
        if to_tag and tag_of(to) is None and code > 100:
            to = f"{to};tag={to_tag}"
        copied = [(k, v) for k, v in req.headers if k.lower() in ("via", "record-route")]
        resp = Msg(f"SIP/2.0 {code} {REASONS.get(code, 'Unknown')}",
                   [*copied, ("From", req.get("From")), ("To", to), ("Call-ID", req.call_id),
                    ("CSeq", req.get("CSeq")), *extra], body)
        if body:
            resp.headers.append(("Content-Type", "application/sdp"))
        self._server_cache[(req.branch, req.method)] = resp
        self._send(resp, self._source_of[req.branch])
        return resp

    async def _transact(self, msg: Msg, dest: Addr, timeout: float = 64 * T1,
                        on_provisional: Callable[[Msg], None] | None = None) -> Msg:
        """Run a client transaction (RFC 3261 §17.1) and return the final response."""
        queue: asyncio.Queue[Msg] = asyncio.Queue()
        self._clients[(msg.branch, msg.method)] = queue
        loop = asyncio.get_running_loop()
        deadline, interval, retransmit = loop.time() + timeout, T1, True
        try:
            self._send(msg, dest)
            while True:
                left = deadline - loop.time()
                if left <= 0:
                    raise TimeoutError(f"phone {self.name}: no final response to {msg.start}")
                try:
                    resp = await asyncio.wait_for(queue.get(), min(interval, left) if retransmit
                                                  else left)
                except TimeoutError:
                    if retransmit:
                        self._send(msg, dest)
                        interval = min(2 * interval, T2 if msg.method != "INVITE" else 16)
                    continue
                if resp.status >= 200:
                    return resp
                retransmit = msg.method != "INVITE"  # Timer A stops at a provisional
                interval = T2
                if on_provisional:
                    on_provisional(resp)
        finally:
            del self._clients[(msg.branch, msg.method)]

    async def _authed(self, build: Callable[[AuthHeader], Msg], dest: Addr,
                      timeout: float = 64 * T1,
                      on_provisional: Callable[[Msg], None] | None = None) -> tuple[Msg, Msg]:
        """Send ``build(None)``; on 401/407 send ``build(credentials)`` once (RFC 3261 §22)."""
        msg = build(None)
        resp = await self._transact(msg, dest, timeout, on_provisional)
        if resp.status not in (401, 407) or self.password is None:
            return msg, resp
        if msg.method == "INVITE":
            self._ack_non2xx(msg, resp, dest)
        challenge = "WWW-Authenticate" if resp.status == 401 else "Proxy-Authenticate"
        header = "Authorization" if resp.status == 401 else "Proxy-Authorization"
        ch = pick_challenge(resp.get_all(challenge))
        value = digest_authorization(ch, msg.method, msg.uri, self.user, self.password)
        msg = build((header, value))
        return msg, await self._transact(msg, dest, timeout, on_provisional)

    def _ack_non2xx(self, invite: Msg, resp: Msg, dest: Addr) -> None:
        """ACK a non-2xx final on the INVITE's branch (RFC 3261 §17.1.1.3)."""
        keep = [(k, v) for k, v in invite.headers if k.lower() in ("via", "from", "call-id",
                                                                   "max-forwards", "route")]
        ack = Msg(f"ACK {invite.uri} SIP/2.0",
                  [*keep, ("To", resp.get("To")), ("CSeq", f"{invite.cseq[0]} ACK")])
        self._send(ack, dest)

    # --- out-of-dialog requests ------------------------------------------------------------

    def _dest_for(self, uri: str) -> Addr:
        return self.server or host_port(uri)

    async def register(self, expires: int = 300) -> Msg:
        """REGISTER this phone's contact for ``expires`` seconds; returns the final response."""
        def build(auth: AuthHeader) -> Msg:
            self._reg_cseq += 1
            extra = [("Contact", self.contact), ("Expires", str(expires))]
            return self._request("REGISTER", f"sip:{self.domain}", f"<{self.aor}>;tag={new_tag()}",
                                 f"<{self.aor}>", self._reg_call_id, self._reg_cseq,
                                 extra + ([auth] if auth else []))
        _msg, resp = await self._authed(build, self._dest_for(f"sip:{self.domain}"))
        return resp

    async def unregister(self) -> Msg:
        """Remove this phone's binding (``Expires: 0``)."""
        return await self.register(0)

    async def options(self, uri: str | None = None) -> Msg:
        """Out-of-dialog OPTIONS to ``uri`` (default: the domain)."""
        target = uri or f"sip:{self.domain}"
        def build(auth: AuthHeader) -> Msg:
            return self._request("OPTIONS", target, f"<{self.aor}>;tag={new_tag()}", f"<{target}>",
                                 secrets.token_hex(10), 1,
                                 [("Accept", "application/sdp")] + ([auth] if auth else []))
        return (await self._authed(build, self._dest_for(target)))[1]

    async def call(self, uri: str, wait: bool = True, timeout: float = 10.0) -> Call:
        """INVITE ``uri``. With ``wait``, return once the final response arrived."""
        call = Call(self, secrets.token_hex(10), "out")
        await call.rtp.open()
        call.local_hdr = f"<{self.aor}>;tag={call.local_tag}"
        call.remote_hdr = f"<{uri}>"
        call.remote_target = uri
        self.calls.append(call)
        call._set_state("calling")
        task = asyncio.create_task(self._invite(call, uri, timeout))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        if wait:
            await call.wait_final(timeout + 1)
        return call

    async def _invite(self, call: Call, uri: str, timeout: float) -> None:
        body = call._sdp("sendrecv")
        def build(auth: AuthHeader) -> Msg:
            extra = [("Contact", self.contact), ("Allow", ALLOW)] + ([auth] if auth else [])
            call.local_cseq += 1
            call.invite = self._request("INVITE", uri, call.local_hdr, call.remote_hdr,
                                        call.call_id, call.local_cseq, extra, body)
            return call.invite
        give_up = asyncio.create_task(self._give_up(call, timeout))
        try:
            invite, resp = await self._authed(build, self._dest_for(uri), timeout + 64 * T1,
                                              lambda r: self._on_provisional(call, r))
        except TimeoutError:
            call.final_status = 408
            call._set_state("terminated")
            return
        finally:
            give_up.cancel()
        self._on_final(call, invite, resp)

    async def _give_up(self, call: Call, timeout: float) -> None:
        """No answer within ``timeout``: CANCEL, as a phone does; the 487 ends the INVITE."""
        await asyncio.sleep(timeout)
        if call.state in ("calling", "early"):
            await call._cancel()

    def _on_provisional(self, call: Call, resp: Msg) -> None:
        call.responses.append(resp)
        if tag_of(resp.get("To")) and call.state == "calling":
            call._set_state("early")
            call.remote_tag = tag_of(resp.get("To"))
        if resp.body:
            call._apply_sdp(parse_sdp(resp.body))

    def _on_final(self, call: Call, invite: Msg, resp: Msg) -> None:
        call.responses.append(resp)
        call.final_status = resp.status
        if resp.status >= 300:
            self._ack_non2xx(invite, resp, call._dest())
            call._set_state("terminated")
            return
        call.remote_hdr = resp.get("To")
        call.remote_tag = tag_of(call.remote_hdr)
        call.remote_target = uri_of(resp.get("Contact")) or call.remote_target
        call.route_set = list(reversed(resp.get_all("Record-Route")))
        if resp.body:
            call._apply_sdp(parse_sdp(resp.body))
        call.ack = call._build("ACK", [], cseq=invite.cseq[0])
        self._send(call.ack, call._dest())
        call.rtp.sending = True
        call._set_state("confirmed")

    # --- receiving -------------------------------------------------------------------------

    def _on_datagram(self, data: bytes, addr: Addr) -> None:
        if not data.strip():
            return  # keep-alive (RFC 5626 §3.5.1 CRLF)
        try:
            msg = parse(data)
        except (ValueError, IndexError):
            return
        label = msg.method if msg.is_request else f"{msg.status} {msg.method}"
        self.events.append(SipEvent(time.monotonic(), "rx", label, msg.get("Call-ID")))
        self.received.append(msg)
        if msg.is_request:
            self._source_of[msg.branch] = addr
            self._on_request(msg)
        elif (msg.branch, msg.method) in self._clients:
            self._clients[(msg.branch, msg.method)].put_nowait(msg)
        elif msg.method == "INVITE" and msg.status < 300:
            self._on_2xx_retransmit(msg)

    def _on_2xx_retransmit(self, resp: Msg) -> None:
        call = self._find(resp.call_id)
        if call and call.ack:  # our ACK was lost: send it again (RFC 3261 §13.2.2.4)
            self._send(call.ack, call._dest())

    def _find(self, call_id: str) -> Call | None:
        return next((c for c in reversed(self.calls) if c.call_id == call_id), None)

    def _on_request(self, req: Msg) -> None:
        cached = self._server_cache.get((req.branch, req.method))
        if cached is not None and req.method != "ACK":
            self._send(cached, self._source_of[req.branch])
            return
        call = self._find(req.call_id)
        if call is not None:
            call.requests.append(req)
        handler = {"INVITE": self._on_invite, "ACK": self._on_ack, "BYE": self._on_bye,
                   "CANCEL": self._on_cancel, "OPTIONS": self._on_options,
                   "NOTIFY": self._on_notify, "INFO": self._on_info}.get(req.method)
        if handler is None:
            self._respond(req, 501)
        else:
            handler(req, call)

    def _on_invite(self, req: Msg, call: Call | None) -> None:
        if tag_of(req.get("To")) is None:
            task = asyncio.create_task(self._new_incoming(req))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        elif call is None or call.state == "terminated":
            self._respond(req, 481)
        else:
            self._on_reinvite(req, call)

    def _on_reinvite(self, req: Msg, call: Call) -> None:
        offer = parse_sdp(req.body) if req.body else None
        if offer:
            call._apply_sdp(offer)
        direction = ANSWER_DIRECTION[offer.direction] if offer else call.rtp.local_direction
        if req.get("Contact"):
            call.remote_target = uri_of(req.get("Contact"))
        call._send_2xx(req, call._sdp(direction, offer))

    async def _new_incoming(self, req: Msg) -> None:
        self._respond(req, 100)
        call = Call(self, req.call_id, "in")
        call.invite = req
        call.remote_hdr = req.get("From")
        call.remote_tag = tag_of(call.remote_hdr)
        call.local_hdr = f"{req.get('To')};tag={call.local_tag}"
        call.remote_target = uri_of(req.get("Contact"))
        call.route_set = req.get_all("Record-Route")
        await call.rtp.open()
        if req.body:
            call._apply_sdp(parse_sdp(req.body))
        self.calls.append(call)
        call._set_state("early")
        if self.ring:
            await call.ring()
        self.incoming.put_nowait(call)
        await self._auto_answer(call)

    async def _auto_answer(self, call: Call) -> None:
        if self.answer_code is None:
            return
        await asyncio.sleep(self.answer_after)
        if call.state != "early":
            return
        if self.answer_code == 200:
            await call.answer()
        else:
            await call.reject(self.answer_code)

    async def next_incoming(self, timeout: float = 5.0) -> Call:
        """The next incoming call (in arrival order)."""
        return await asyncio.wait_for(self.incoming.get(), timeout)

    def _on_ack(self, req: Msg, call: Call | None) -> None:
        if call is None:
            return
        if req.body:  # late offer: the answer arrives in the ACK (RFC 3261 §13.2.1)
            call._apply_sdp(parse_sdp(req.body))
        call._acked.set()

    def _on_bye(self, req: Msg, call: Call | None) -> None:
        if call is None or call.state == "terminated":
            self._respond(req, 481)
            return
        self._respond(req, 200)
        call._set_state("terminated")

    def _on_cancel(self, req: Msg, call: Call | None) -> None:
        if call is None or call.invite is None or call.invite.branch != req.branch:
            self._respond(req, 481)
            return
        self._respond(req, 200)
        if call.state == "early":
            self._respond(call.invite, 487, to_tag=call.local_tag)
            call.final_status = 487
            call._set_state("terminated")

    def _on_options(self, req: Msg, call: Call | None) -> None:
        self._respond(req, 200, extra=[("Allow", ALLOW), ("Accept", "application/sdp")])

    def _on_notify(self, req: Msg, call: Call | None) -> None:
        if call is None:
            self._respond(req, 481)
            return
        call.notifies.append(req)
        self._respond(req, 200)

    def _on_info(self, req: Msg, call: Call | None) -> None:
        self._respond(req, 200 if call else 481)
