"""A B2BUA on a fake clock with fake SIP phones and a fake engine, all in memory.

How this works: the server side is the real thing — `B2BUA` over a real sans-I/O
`SipEndpoint`, with a `ServiceHost` (no plugins; the built-in REFER service) as its listener —
given a `FakeClock` and a `FakeEngine` (streams, remotes, directions and
feeds recorded, no sockets, no thread). Each `Phone` is another `SipEndpoint` with a small
scripted user agent (rings on INVITE, answers when told, 200s in-dialog requests, keeps the
NOTIFY bodies it gets). `World.pump()` carries datagrams between the endpoints until all is
quiet; `World.advance(dt)` runs every timer (call layer and SIP) in time order, so a 20 s ring
timeout or a 32 s transaction timeout costs nothing. Phones reach the server from a trusted
source with P-Asserted-Identity, so calls need no digest round (the gatekeeper's own tests
cover digest). Who hears whom is read from the media topology, as the engine would play it.
"""

from __future__ import annotations

import dataclasses
import heapq
import ipaddress
import itertools
from collections.abc import Callable
from pathlib import Path
from urllib.parse import quote

from mediasrv.call.b2bua import B2BUA
from mediasrv.call.control import ServiceControl
from mediasrv.call.gatekeeper import Gatekeeper
from mediasrv.call.leg import SipLeg
from mediasrv.call.registrar import Registrar
from mediasrv.call.store import Store
from mediasrv.config import (
    DEFAULT_CONFIG_DIR,
    DEFAULT_PLUGIN_DIR,
    Config,
    FailoverAction,
    load_config,
)
from mediasrv.media.engine import MediaError
from mediasrv.media.events import DtmfReceived, PlayFinished
from mediasrv.services.host import ServiceHost
from mediasrv.sip import events as sip
from mediasrv.sip.dialog import Dialog
from mediasrv.sip.endpoint import Destination, SipEndpoint
from mediasrv.sip.message import Headers, Request, Response, make_response, parse_message
from mediasrv.sip.sdp import SessionDescription, build_offer
from mediasrv.sip.transaction import ClientTransaction, ServerTransaction
from mediasrv.sip.uri import generate_branch, generate_call_id, generate_tag

SERVER = ("127.0.0.1", 5060)
SHIPPED = load_config([DEFAULT_CONFIG_DIR], DEFAULT_PLUGIN_DIR)


# ---------------------------------------------------------------------------- clock


class Handle:
    def __init__(self) -> None:
        self.cancelled = False

    def cancel(self) -> None:
        self.cancelled = True


class FakeClock:
    """The call layer's `Clock`, advanced by the test."""

    def __init__(self) -> None:
        self.t = 1000.0
        self._queue: list[tuple[float, int, Handle, Callable[..., object], tuple]] = []
        self._seq = itertools.count()

    def now(self) -> float:
        return self.t

    def wall(self) -> float:
        return 1_700_000_000.0 + self.t

    def call_later(self, delay: float, callback: Callable[..., object], *args: object) -> Handle:
        handle = Handle()
        heapq.heappush(self._queue, (self.t + delay, next(self._seq), handle, callback, args))
        return handle

    def call_soon(self, callback: Callable[..., object], *args: object) -> None:
        self.call_later(0.0, callback, *args)

    def next_deadline(self) -> float | None:
        while self._queue and self._queue[0][2].cancelled:
            heapq.heappop(self._queue)
        return self._queue[0][0] if self._queue else None

    def run_due(self) -> bool:
        """Runs the callbacks due now; True when one ran."""
        ran = False
        while (deadline := self.next_deadline()) is not None and deadline <= self.t:
            _, _, handle, callback, args = heapq.heappop(self._queue)
            if not handle.cancelled:
                callback(*args)
                ran = True
        return ran


# ---------------------------------------------------------------------------- engine


class FakeEngine:
    """The media engine's commands, recorded: streams, where they send, what they play."""

    def __init__(self) -> None:
        self._ids = itertools.count(1)
        self._plays = itertools.count(1)
        self.streams: set[int] = set()
        self.remote: dict[int, tuple[str, int, str]] = {}
        self.direction: dict[int, tuple[bool, bool]] = {}
        self.recording: dict[int, str] = {}
        self.prompts: dict[int, int] = {}  # stream -> the id of the last prompt it was given
        self.groups: dict[int, str | None] = {}
        self.admitting = True
        self.log: list[tuple[object, ...]] = []
        self.ports_left: int | None = None  # a number: open_stream fails once it reaches 0

    def admits(self, now: float) -> bool:
        return self.admitting

    def open_stream(self, group: str | None = None, *, dtmf: str = "auto") -> int:
        if self.ports_left is not None:
            if self.ports_left <= 0:
                raise MediaError("no free RTP port")
            self.ports_left -= 1
        sid = next(self._ids)
        self.streams.add(sid)
        self.groups[sid] = group
        self.direction[sid] = (True, True)
        self.log.append(("dtmf", sid, dtmf, True))
        return sid

    def local_port(self, sid: int) -> int:
        return 40000 + 2 * sid

    def set_remote(self, sid: int, host: str, port: int, *, codec: str, pt: int,
                   event_pt: int | None = None, **_: object) -> None:
        self.remote[sid] = (host, port, codec)

    def set_srtp(self, sid: int, suite: str | None, *, rx_key: bytes = b"",
                 tx_key: bytes = b"") -> None:
        self.log.append(("srtp", sid, suite))

    def set_direction(self, sid: int, *, send: bool, recv: bool) -> None:
        self.direction[sid] = (send, recv)

    def close_stream(self, sid: int) -> dict[str, int]:
        self.streams.discard(sid)
        return self.stats(sid)

    def open_stream_count(self) -> int:
        return len(self.streams)

    def stats(self, sid: int) -> dict[str, int]:
        return {"packets_in": 0, "packets_out": 0}

    def set_dtmf(self, sid: int, *, mode: str = "auto", forward: bool = True) -> None:
        self.log.append(("dtmf", sid, mode, forward))

    def connect(self, a: int, b: int) -> None:
        self.log.append(("connect", a, b))

    def conference(self, sids: list[int]) -> None:
        self.log.append(("conference", *sids))

    def play_moh(self, sid: int, moh_class: str) -> None:
        self.log.append(("moh", sid, moh_class))

    def play_prompt(self, sid: int, name: str) -> int:
        self.log.append(("prompt", sid, name))
        self.prompts[sid] = next(self._plays)
        return self.prompts[sid]

    def play_tone(self, sid: int, tone: str) -> None:
        self.log.append(("tone", sid, tone))

    def play_silence(self, sid: int) -> None:
        self.log.append(("silence", sid))

    def set_mute(self, sid: int, muted: bool) -> None:
        self.log.append(("mute", sid, muted))

    def send_dtmf(self, sid: int, digit: str, duration_ms: int = 100) -> None:
        self.log.append(("send_dtmf", sid, digit))

    def record_start(self, sid: int, path: str, max_seconds: float) -> None:
        self.recording[sid] = path

    def record_stop(self, sid: int) -> None:
        self.recording.pop(sid, None)


# ---------------------------------------------------------------------------- SIP side


class ServerPort:
    """The B2BUA's `SipPort` over the server's endpoint, on the fake clock."""

    def __init__(self, world: World) -> None:
        self.world = world

    def send_request(self, request: Request, destination: Destination) -> ClientTransaction:
        return self.world.server.send_request(request, destination, self.world.clock.t)

    def send_response(self, txn: ServerTransaction, response: Response) -> Dialog | None:
        return self.world.server.send_response(txn, response, self.world.clock.t)

    def cancel(self, invite_txn: ClientTransaction) -> None:
        self.world.server.cancel(invite_txn, self.world.clock.t)

    def send_ack_2xx(self, ack: Request, destination: Destination) -> None:
        self.world.server.send_ack_2xx(ack, destination, self.world.clock.t)


@dataclasses.dataclass(eq=False)
class PhoneCall:
    """One dialog of a phone: as caller (`txn` is our INVITE) or as callee."""

    call_id: str
    txn: object = None
    dialog: Dialog | None = None
    status: int = 0  # the final status of an INVITE we sent (0 while ringing)
    invite: Request | None = None  # an INVITE we received, while unanswered
    ended: bool = False
    local_tag: str = ""
    remote_tag: str = ""  # from the first provisional or final response with a To tag


class Phone:
    """A scripted phone on its own endpoint: rings, answers when told, records NOTIFYs."""

    def __init__(self, world: World, number: str, host: str) -> None:
        self.world, self.number, self.addr = world, number, (host, 5060)
        self.endpoint = SipEndpoint({"udp": self.addr, "tcp": self.addr})
        self.calls: list[PhoneCall] = []
        self.notifies: list[tuple[str, str]] = []  # (Subscription-State, sipfrag status line)
        self._notify_keys: set[tuple[str, int]] = set()
        self.responses: list[Response] = []  # final responses to our out-of-INVITE requests
        self.reinvites: list[SessionDescription] = []
        self.answer_with: int = 0  # answer new INVITEs at once with this status (0: ring)
        self.early_media = False  # ring with 183 and SDP instead of 180
        self.rtp_port = 20000 + int(number)
        self.rtp_codecs = ["PCMU"]
        self.offer: bytes = b""  # an SDP to send instead of ours (e.g. one that cannot match)
        self.reinvite_status = 200  # answer re-INVITEs with this (0: never answer them)
        self.unplugged = False  # True: everything sent to the phone is lost

    # ------------------------------------------------------------------ actions

    def call(self, target: str, *, replaces: str = "") -> PhoneCall:
        call_id, tag = generate_call_id(self.addr[0]), generate_tag()
        headers = [("Via", f"SIP/2.0/UDP {self.addr[0]}:5060;branch={generate_branch()};rport"),
                   ("Max-Forwards", "70"),
                   ("From", f"<sip:{self.number}@{SERVER[0]}>;tag={tag}"),
                   ("To", f"<sip:{target}@{SERVER[0]}>"), ("Call-ID", call_id),
                   ("CSeq", "1 INVITE"), ("Contact", f"<sip:{self.number}@{self.addr[0]}>"),
                   ("P-Asserted-Identity", f"<sip:{self.number}@{SERVER[0]}>"),
                   ("Content-Type", "application/sdp")]
        if replaces:
            headers.append(("Replaces", replaces))
        request = Request("INVITE", f"sip:{target}@{SERVER[0]}", Headers(headers), self.sdp())
        call = PhoneCall(call_id, local_tag=tag)
        call.txn = self.endpoint.send_request(request, (*SERVER, "udp"), self.world.clock.t)
        self.calls.append(call)
        self.world.pump()
        return call

    def answer(self, call: PhoneCall | None = None, status: int = 200) -> None:
        call = call or self.ringing()
        assert call.invite is not None, "no INVITE to answer"
        response = make_response(call.invite, status, to_tag=call.local_tag, headers=[
            ("Contact", f"<sip:{self.number}@{self.addr[0]}>")])
        if status == 200:
            response.headers.set("Content-Type", "application/sdp")
            response.body = self.sdp()
        dialog = self.endpoint.send_response(call.txn, response, self.world.clock.t)
        call.dialog, call.invite = dialog, None
        call.ended = status >= 300
        self.world.pump()

    def request(self, call: PhoneCall, method: str, headers: tuple[tuple[str, str], ...] = (),
                body: bytes = b"") -> None:
        assert call.dialog is not None
        request = call.dialog.create_request(method, body=body, headers=headers)
        self.endpoint.send_request(request, (*SERVER, "udp"), self.world.clock.t)
        if method == "BYE":
            call.ended = True
        self.world.pump()

    def refer(self, call: PhoneCall, target: str, replaces: str = "",
              extra: tuple[tuple[str, str], ...] = ()) -> None:
        uri = f"sip:{target}@{SERVER[0]}"
        if replaces:
            uri += "?Replaces=" + quote(replaces, safe="")
        self.request(call, "REFER", (("Refer-To", f"<{uri}>"), *extra))

    def hangup(self, call: PhoneCall) -> None:
        self.request(call, "BYE")

    # ------------------------------------------------------------------ views

    def ringing(self) -> PhoneCall:
        return next(c for c in self.calls if c.invite is not None)

    def replaces_for(self, call: PhoneCall, early_only: bool = False) -> str:
        """The Replaces value naming `call`'s dialog (early or confirmed) as the server holds
        it: the to-tag is the server's, the from-tag ours (RFC 3891 §6.1)."""
        assert call.remote_tag, "no dialog yet"
        value = f"{call.call_id};to-tag={call.remote_tag};from-tag={call.local_tag}"
        return value + (";early-only" if early_only else "")

    def sdp(self, port: int | None = None) -> bytes:
        if self.offer:
            return self.offer
        return build_offer(self.addr[0], port or self.rtp_port, self.rtp_codecs, 101,
                           session_id=int(self.number), version=1).to_bytes()

    @property
    def final_notify(self) -> str:
        """The sipfrag status line of the NOTIFY that ended a subscription ("" for none)."""
        return next((frag for state, frag in self.notifies if state.startswith("terminated")),
                    "")

    # ------------------------------------------------------------------ events

    def wire_in(self, data: bytes) -> None:
        """Sees what reaches the phone before its endpoint does: NOTIFYs are kept here, as a
        subscriber keeps its REFER subscription after its own BYE (RFC 5057: the BYE ends the
        invite usage only), while the endpoint answers 481 for the dialog it ended."""
        message = parse_message(data)
        if isinstance(message, Request) and message.method == "NOTIFY":
            key = (message.call_id, message.cseq[0])
            if key not in self._notify_keys:  # not a retransmission
                self._notify_keys.add(key)
                frag = message.body.decode().split("\r\n")[0]
                self.notifies.append((message.headers.get("Subscription-State") or "", frag))

    def on_event(self, event: sip.SipEvent) -> None:
        if isinstance(event, sip.RequestReceived):
            self._on_request(event)
        elif isinstance(event, sip.ResponseReceived):
            self._on_response(event)
        elif isinstance(event, sip.CancelReceived):
            for call in self.calls:
                if call.txn is event.invite_txn:
                    call.ended, call.invite = True, None

    def _on_request(self, event: sip.RequestReceived) -> None:
        request, now = event.request, self.world.clock.t
        if request.method == "INVITE" and event.dialog is None:
            call = PhoneCall(request.call_id, txn=event.txn, invite=request,
                             local_tag=generate_tag(), remote_tag=request.from_tag or "")
            self.calls.append(call)
            ringing = make_response(request, 183 if self.early_media else 180,
                                    to_tag=call.local_tag)
            if self.early_media:
                ringing.headers.set("Content-Type", "application/sdp")
                ringing.body = self.sdp()
            self.endpoint.send_response(event.txn, ringing, now)
            if self.answer_with:
                self.world.clock.call_soon(self.answer, call, self.answer_with)
            return
        response = make_response(request, 200)
        if request.method == "INVITE":
            self.reinvites.append(SessionDescription.parse(request.body))
            if not self.reinvite_status:
                return
            response = make_response(request, self.reinvite_status)
            if self.reinvite_status == 200:
                response.headers.set("Content-Type", "application/sdp")
                response.body = self.sdp()
        elif request.method == "BYE":
            for call in self.calls:
                if call.dialog is not None and call.dialog.id == event.dialog.id:
                    call.ended = True
        self.endpoint.send_response(event.txn, response, now)

    def _on_response(self, event: sip.ResponseReceived) -> None:
        status = event.response.status
        call = next((c for c in self.calls if c.txn is event.txn), None)
        if call is None:
            if status >= 200:
                self.responses.append(event.response)
            if 200 <= status < 300 and event.txn.request.method == "INVITE" and event.dialog:
                self.endpoint.send_ack_2xx(event.dialog.create_request("ACK"),
                                           (*SERVER, "udp"), self.world.clock.t)
            return
        call.remote_tag = call.remote_tag or event.response.to_tag or ""
        if status >= 200:
            call.status = status
            call.ended = status >= 300
        if 200 <= status < 300 and event.dialog is not None:
            call.dialog = event.dialog
            self.endpoint.send_ack_2xx(event.dialog.create_request("ACK"), (*SERVER, "udp"),
                                       self.world.clock.t)


# ---------------------------------------------------------------------------- world


class World:
    """The server and its phones; `pump()` and `advance()` drive everything."""

    def __init__(self, tmp_path: Path, *, direct: tuple[str, ...] = (),
                 ring_timeout: float = 20.0,
                 failover: dict[str, dict[str, FailoverAction]] | None = None) -> None:
        self.clock = FakeClock()
        self.engine = FakeEngine()
        self.config = _config(tmp_path, direct, ring_timeout, failover or {})
        self.server = SipEndpoint({"udp": SERVER, "tcp": SERVER})
        self.store = Store(tmp_path / "state.db")
        self.registrar = Registrar(self.store)
        self.b2bua = B2BUA(self.config, ServerPort(self), self.engine, self.registrar,  # type: ignore[arg-type]
                           Gatekeeper(self.config), self.store, self.clock)
        self.control = ServiceControl(self.b2bua)
        self.services = ServiceHost(self.control, [])  # no plugins: REFER is built in
        self.b2bua.listener = self.services.handle
        self.events: list[dict[str, object]] = []
        self.b2bua.observers.append(self.events.append)
        self.phones: dict[tuple[str, int], Phone] = {}

    def phone(self, number: str) -> Phone:
        """A phone registered as extension `number`."""
        phone = Phone(self, number, f"127.0.1.{len(self.phones) + 1}")
        self.phones[phone.addr] = phone
        register = parse_message((
            f"REGISTER sip:{SERVER[0]} SIP/2.0\r\n"
            f"Via: SIP/2.0/UDP {phone.addr[0]}:5060;branch={generate_branch()}\r\n"
            f"From: <sip:{number}@{SERVER[0]}>;tag=r\r\nTo: <sip:{number}@{SERVER[0]}>\r\n"
            f"Call-ID: reg-{number}\r\nCSeq: 1 REGISTER\r\n"
            f"Contact: <sip:{number}@{phone.addr[0]}:5060>\r\nExpires: 3600\r\n"
            "Content-Length: 0\r\n\r\n").encode())
        assert isinstance(register, Request)
        response = self.registrar.register(number, register, (*phone.addr, "udp"),
                                           self.clock.wall())
        assert response.status == 200
        return phone

    def pump(self) -> None:
        """Carries datagrams and events between the endpoints until all is quiet."""
        for _ in range(10_000):
            moved = False
            for event in self.server.next_events():
                self.b2bua.on_sip_event(event)
                moved = True
            for phone in self.phones.values():
                for event in phone.endpoint.next_events():
                    phone.on_event(event)
                    moved = True
            moved |= self.clock.run_due()
            for out in self.server.datagrams_to_send():
                phone = self.phones[(out.destination[0], out.destination[1])]
                if not phone.unplugged:
                    phone.wire_in(out.data)
                    phone.endpoint.receive(out.data, SERVER, "udp", None, None, self.clock.t)
                moved = True
            for phone in self.phones.values():
                for out in phone.endpoint.datagrams_to_send():
                    self.server.receive(out.data, phone.addr, "udp", None, None, self.clock.t)
                    moved = True
            if not moved:
                return
        raise AssertionError("the world never went quiet")

    def advance(self, seconds: float) -> None:
        """Runs every timer due within `seconds`, in time order."""
        until = self.clock.t + seconds
        self.pump()
        while True:
            deadlines = [d for d in (self.clock.next_deadline(), self.server.get_timer(),
                                     *(p.endpoint.get_timer() for p in self.phones.values()))
                         if d is not None]
            if not deadlines or min(deadlines) > until:
                break
            self.clock.t = max(self.clock.t, min(deadlines))
            self.server.handle_timer(self.clock.t)
            for phone in self.phones.values():
                phone.endpoint.handle_timer(self.clock.t)
            self.pump()
        self.clock.t = until

    # ------------------------------------------------------------------ views

    def leg(self, number: str) -> SipLeg:
        """The one live leg of extension `number`."""
        legs = [leg for leg in self.b2bua.legs if leg.number == number]
        assert len(legs) == 1, f"{number}: {legs}"
        return legs[0]

    def hears(self, number: str) -> str:
        """Who (or what) extension `number`'s phone hears: a number, or the feed kind."""
        feed = self.b2bua.topology.hears(self.leg(number))
        if feed.kind == "peer" and feed.peer is not None:
            return feed.peer.number
        return f"{feed.kind}:{feed.name}" if feed.name else feed.kind

    def dtmf(self, number: str, digits: str) -> None:
        """Extension `number`'s phone sends `digits` (RFC 4733), 0.3 s apart."""
        for digit in digits:
            stream = self.leg(number).stream
            self.b2bua.on_media_event(DtmfReceived(stream, digit, 100, "rfc4733", self.clock.t))
            self.advance(0.3)

    def prompt_played(self, number: str) -> None:
        """The engine says the prompt extension `number`'s leg hears played to the end."""
        stream = self.leg(number).stream
        self.b2bua.on_media_event(PlayFinished(stream, self.engine.prompts[stream]))
        self.pump()

    def transfer_events(self) -> list[tuple[object, object]]:
        return [(e["state"], e["phase"]) for e in self.events if e["kind"] == "transfer"]

    def settled(self) -> None:
        """Nothing left over once every call ended."""
        self.advance(40.0)
        report = self.b2bua.leak_report()
        assert all(v == 0 for v in report.values()), report
        assert self.engine.open_stream_count() == 0


def _config(tmp_path: Path, direct: tuple[str, ...], ring_timeout: float,
            failover: dict[str, dict[str, FailoverAction]]) -> Config:
    extensions = {
        number: dataclasses.replace(ext, direct_media=number in direct, ring_timeout=ring_timeout,
                                    failover={**ext.failover, **failover.get(number, {})})
        for number, ext in SHIPPED.extensions.items()}
    sip_cfg = dataclasses.replace(SHIPPED.sip,
                                  trusted=(ipaddress.ip_network("127.0.1.0/24"),))
    storage = dataclasses.replace(SHIPPED.storage, path=tmp_path / "state.db")
    return dataclasses.replace(SHIPPED, extensions=extensions, sip=sip_cfg, storage=storage)
