"""The console extension: a SIP phone inside the server whose audio is the sound card.

How this works: `ConsolePhone` is an ordinary user agent of our own server, so the B2BUA
treats it like any phone (registration, ringing, failover, transfer services): it runs its
own sans-I/O `SipEndpoint` behind a `SipDriver` on a loopback UDP port and
- registers as `console.extension` with the extension's password (RFC 3261 §10.2, digest
  §22.2; refreshed at 80 % of the granted time, removed at stop);
- answers every INVITE at once when idle (it is the operator's desk: no handset to lift),
  486 when a call is up (§21.4.7); BYE ends the call (§15.1.2);
- places calls on request (`dial`), answering a 401/407 challenge once (§22.2), ACKing the
  2xx (§13.2.2.4), and hangs up with BYE or CANCEL (§9.1).
Media is one RTP stream between the sound card and the server (`rtp.RtpPeer`).
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass

from mediasrv.config import Config
from mediasrv.console.audio import ConsoleAudioError, SoundCard
from mediasrv.console.rtp import RtpPeer
from mediasrv.sip import events as sip
from mediasrv.sip.auth import build_authorization
from mediasrv.sip.dialog import Dialog
from mediasrv.sip.endpoint import EndpointConfig, SipEndpoint
from mediasrv.sip.errors import SipParseError
from mediasrv.sip.message import Headers, Request, Response, make_response
from mediasrv.sip.sdp import (
    SdpNegotiationError,
    SessionDescription,
    build_answer,
    build_offer,
    negotiate,
)
from mediasrv.sip.transaction import ClientTransaction, ServerTransaction
from mediasrv.sip.uri import generate_call_id, generate_tag
from mediasrv.transport.driver import SipDriver
from mediasrv.transport.udp import UdpListener, open_udp

log = logging.getLogger("mediasrv.console")

CODECS = ["PCMU", "PCMA"]
REGISTER_EXPIRES = 300
IDLE, CALLING, TALKING = "idle", "calling", "talking"


class ConsoleError(Exception):
    """The console cannot start: the message says why."""


async def open_console(config: Config) -> ConsolePhone | None:
    """The console of `config` started and registered, or None when `console.extension` is
    "" (off). Raises `ConsoleError` naming what is missing."""
    console = config.console
    if not console.extension:
        return None
    ext = config.extensions.get(console.extension)
    if ext is None or not ext.password:
        raise ConsoleError(f"console.extension {console.extension!r} must be an extension "
                           "defined with a password")
    udp = next((lst for lst in config.sip.listen if lst.transport == "udp"), None)
    if udp is None:
        raise ConsoleError("the console needs a UDP SIP listener to register to")
    host = "127.0.0.1" if udp.host in ("0.0.0.0", "") else "::1" if udp.host == "::" else udp.host
    phone = ConsolePhone(ext.number, ext.password, (host, udp.port),
                         SoundCard(console.input_device, console.output_device),
                         host=host, t1=config.sip.timer_t1)
    try:
        await phone.start()
    except (ConsoleAudioError, OSError, TimeoutError) as exc:
        await phone.stop()
        raise ConsoleError(f"{exc or 'the server did not accept its registration'}") from exc
    return phone


@dataclass
class _Outgoing:
    """A request we sent that may be challenged and re-sent once with credentials."""

    request: Request
    authorised: bool = False


class ConsolePhone:
    """The console extension's user agent: one call at a time, audio on `card`."""

    def __init__(self, number: str, password: str, server: tuple[str, int], card: SoundCard,
                 *, host: str = "127.0.0.1", t1: float = 0.5) -> None:
        self.number, self.password = number, password
        self.server = (server[0], server[1], "udp")
        self.card = card
        self.host = host
        self.t1 = t1
        self.state = IDLE
        self.peer = ""  # the other party's number while calling or talking
        self.registered = asyncio.Event()
        self.dialog: Dialog | None = None
        self.rtp: RtpPeer | None = None
        self.driver: SipDriver | None = None
        self._udp: UdpListener | None = None
        self._sent: dict[ClientTransaction, _Outgoing] = {}
        self._invite: ClientTransaction | None = None
        self._refresh: asyncio.TimerHandle | None = None
        self._reg_call_id = generate_call_id(host)
        self._reg_tag = generate_tag()
        self._cseq = 0
        self._sdp_id = 0

    # ------------------------------------------------------------------ lifecycle

    async def start(self, timeout: float = 5.0) -> None:
        """Binds SIP and RTP sockets on loopback, starts the card and registers."""
        loop = asyncio.get_running_loop()
        self._udp = await open_udp(self.host, 0, lambda *a: self.driver and
                                   self.driver.on_data(*a))
        t1 = self.t1
        endpoint = SipEndpoint({"udp": self._udp.local},
                               EndpointConfig(t1=t1, t2=8 * t1, t4=10 * t1, min_d=64 * t1,
                                              user_agent="mediasrv-console"))
        self.driver = SipDriver(endpoint, self._on_event, loop)
        self.driver.udp.append(self._udp)
        _, self.rtp = await loop.create_datagram_endpoint(lambda: RtpPeer(self.card),
                                                          local_addr=(self.host, 0))
        self.card.start()
        self._register(REGISTER_EXPIRES)
        await asyncio.wait_for(self.registered.wait(), timeout)

    async def stop(self) -> None:
        """Hangs up, removes the registration (briefly waited for) and closes everything."""
        self.hangup()
        if self._refresh is not None:
            self._refresh.cancel()
        if self.registered.is_set() and self.driver is not None:
            self.registered.clear()
            txn = self._register(0)
            for _ in range(20):  # at most 1 s: the server may be stopping too
                if txn.state.value == "terminated" or txn not in self._sent:
                    break
                await asyncio.sleep(0.05)
        if self.rtp is not None:
            self.rtp.close()
        if self._udp is not None:
            self._udp.close()
        if self.driver is not None:
            self.driver.close()
        self.card.stop()

    # ------------------------------------------------------------------ actions

    def dial(self, number: str) -> None:
        """Calls `number` through the server; ValueError when a call is already up."""
        if self.state != IDLE:
            raise ValueError(f"the console is {self.state}")
        assert self.rtp is not None
        self._sdp_id += 1
        offer = build_offer(self.host, self.rtp.port, CODECS, None, session_id=self._sdp_id,
                            version=0).to_bytes()
        request = self._new_request("INVITE", f"sip:{number}@{self._server_host()}",
                                    generate_call_id(self.host), generate_tag(), 1,
                                    to=f"<sip:{number}@{self._server_host()}>")
        request.headers.set("Content-Type", "application/sdp")
        request.body = offer
        self.state, self.peer = CALLING, number
        self._invite = self._send(request)

    def hangup(self) -> None:
        """Ends the call: BYE when answered, CANCEL while our INVITE rings."""
        if self.state == TALKING and self.dialog is not None and self.driver is not None:
            self.driver.send_request(self.dialog.create_request("BYE"), self.server)
        elif self.state == CALLING and self._invite is not None and self.driver is not None:
            self.driver.cancel(self._invite)
        self._call_over()

    # ------------------------------------------------------------------ requests out

    def _server_host(self) -> str:
        return f"{self.server[0]}:{self.server[1]}"

    def _local(self) -> str:
        assert self._udp is not None, "start() the console first"
        return f"{self.host}:{self._udp.local[1]}"

    def _new_request(self, method: str, uri: str, call_id: str, tag: str, cseq: int, *,
                     to: str) -> Request:
        local = self._local()
        return Request(method, uri, Headers([
            ("Max-Forwards", "70"),
            ("From", f"<sip:{self.number}@{self._server_host()}>;tag={tag}"), ("To", to),
            ("Call-ID", call_id), ("CSeq", f"{cseq} {method}"),
            ("Contact", f"<sip:{self.number}@{local}>"),
        ]))

    def _register(self, expires: int) -> ClientTransaction:
        self._cseq += 1
        aor = f"<sip:{self.number}@{self._server_host()}>"
        request = self._new_request("REGISTER", f"sip:{self._server_host()}",
                                    self._reg_call_id, self._reg_tag, self._cseq, to=aor)
        request.headers.set("Expires", str(expires))
        return self._send(request)

    def _send(self, request: Request, authorised: bool = False) -> ClientTransaction:
        assert self.driver is not None
        txn = self.driver.send_request(request, self.server)
        self._sent[txn] = _Outgoing(request, authorised)
        return txn

    def _retry_with_auth(self, sent: _Outgoing, response: Response) -> ClientTransaction | None:
        """Re-sends a challenged request once with an Authorization (§22.2)."""
        header = "WWW-Authenticate" if response.status == 401 else "Proxy-Authenticate"
        challenge = response.headers.get(header)
        if sent.authorised or not challenge:
            return None
        request = sent.request
        try:
            credentials = build_authorization(challenge, request.method, request.uri,
                                              self.number, self.password)
        except SipParseError:
            return None
        retry = Request(request.method, request.uri, Headers(list(request.headers.items())),
                        request.body)
        retry.headers.remove("Via")
        number = request.cseq[0] + 1
        retry.headers.set("CSeq", f"{number} {request.method}")
        if request.method == "REGISTER":
            self._cseq = number
        retry.headers.set("Authorization" if response.status == 401
                          else "Proxy-Authorization", credentials)
        return self._send(retry, authorised=True)

    # ------------------------------------------------------------------ events in

    def _on_event(self, event: sip.SipEvent) -> None:
        if isinstance(event, sip.RequestReceived):
            self._on_request(event.txn, event.request, event.dialog)
        elif isinstance(event, sip.ResponseReceived):
            self._on_response(event.txn, event.response, event.dialog)
        elif isinstance(event, sip.CancelReceived):
            self._call_over()
        elif isinstance(event, sip.TransactionTimedOut | sip.TransportFailed):
            sent = self._sent.pop(event.txn, None)
            if sent is not None and sent.request.method == "INVITE":
                self._call_over()
            elif sent is not None:
                log.warning("console: %s got no answer from the server", sent.request.method)

    def _on_request(self, txn: ServerTransaction, request: Request,
                    dialog: Dialog | None) -> None:
        assert self.driver is not None
        if request.method == "INVITE" and dialog is None:
            self._incoming(txn, request)
        elif request.method == "BYE" and dialog is not None:
            self.driver.send_response(txn, make_response(request, 200))
            self._call_over()
        elif request.method == "INVITE":  # a re-INVITE: same media, new address maybe
            self._answer(txn, request, ringing=False)
        elif request.method in ("OPTIONS", "UPDATE", "INFO", "NOTIFY"):
            self.driver.send_response(txn, make_response(request, 200))
        else:
            self.driver.send_response(txn, make_response(request, 405))

    def _incoming(self, txn: ServerTransaction, request: Request) -> None:
        assert self.driver is not None
        if self.state != IDLE:
            self.driver.send_response(txn, make_response(request, 486, to_tag=generate_tag()))
            return
        self.peer = request.from_addr.uri.user or ""
        self._answer(txn, request, ringing=True)

    def _answer(self, txn: ServerTransaction, request: Request, ringing: bool) -> None:
        """200 with our SDP answer; 488 when no G.711 stream is offered."""
        assert self.driver is not None and self.rtp is not None
        try:
            offer = SessionDescription.parse(request.body)
            media = negotiate(offer, CODECS)
        except (SdpNegotiationError, SipParseError, ValueError):
            self.driver.send_response(txn, make_response(request, 488, to_tag=generate_tag()))
            return
        self._sdp_id += 1
        answer = build_answer(offer, media, self.host, self.rtp.port, self._sdp_id, 0)
        response = make_response(request, 200, to_tag=generate_tag(), headers=[
            ("Contact", f"<sip:{self.number}@{self._local()}>"),
            ("Content-Type", "application/sdp")])
        response.body = answer.to_bytes()
        dialog = self.driver.send_response(txn, response)
        if ringing:
            self.dialog, self.state = dialog, TALKING
            log.info("console: answered a call from %s", self.peer)
        self.rtp.begin(media.remote_addr, media.remote_port, media.codec, media.pt)

    def _on_response(self, txn: ClientTransaction, response: Response,
                     dialog: Dialog | None) -> None:
        sent = self._sent.get(txn)
        if sent is None or response.status < 200:
            return
        del self._sent[txn]
        if response.status in (401, 407):
            retry = self._retry_with_auth(sent, response)
            if retry is not None:
                if txn is self._invite:
                    self._invite = retry
                return
        if sent.request.method == "REGISTER":
            self._registered(sent, response)
        elif sent.request.method == "INVITE" and txn is self._invite:
            self._invite_answered(response, dialog)

    def _registered(self, sent: _Outgoing, response: Response) -> None:
        expires = int(sent.request.headers.get("Expires") or 0)
        if response.status >= 300:
            log.error("console: registration of %s refused: %d %s", self.number,
                      response.status, response.reason)
            return
        if expires:
            self.registered.set()
            loop = asyncio.get_running_loop()
            self._refresh = loop.call_later(0.8 * expires, self._register, expires)

    def _invite_answered(self, response: Response, dialog: Dialog | None) -> None:
        assert self.driver is not None and self.rtp is not None
        self._invite = None
        if response.status >= 300 or dialog is None or self.state != CALLING:
            if 200 <= response.status < 300 and dialog is not None:  # we gave up meanwhile
                self.driver.send_ack_2xx(dialog.create_request("ACK"), self.server)
                self.driver.send_request(dialog.create_request("BYE"), self.server)
            self._call_over()
            return
        self.driver.send_ack_2xx(dialog.create_request("ACK"), self.server)
        try:
            media = negotiate(SessionDescription.parse(response.body), CODECS)
        except (SdpNegotiationError, SipParseError, ValueError):
            self.driver.send_request(dialog.create_request("BYE"), self.server)
            self._call_over()
            return
        self.dialog, self.state = dialog, TALKING
        self.rtp.begin(media.remote_addr, media.remote_port, media.codec, media.pt)

    def _call_over(self) -> None:
        if self.rtp is not None:
            self.rtp.end()
        self.state, self.peer, self.dialog, self._invite = IDLE, "", None, None
