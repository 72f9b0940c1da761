"""Drives the sans-I/O `SipEndpoint` from asyncio: the aioquic `asyncio/protocol.py` shape.

How this works: bytes from every UDP and TCP listener go to `SipEndpoint.receive()` with the
loop's clock as `now`; after every input (bytes, a timer, a call from the call layer) the
driver `flush()`es: it writes the endpoint's queued datagrams to the right socket, closes
the TCP connections the endpoint gave up on, hands the endpoint's events to `on_event`, and
re-arms the ONE `loop.call_at` timer from `get_timer()` when that deadline is earlier than
the armed one (a timer left armed too early just finds nothing due and re-arms). A
call-layer action taken while events are being handed up is flushed by the same loop, so
nothing is sent out of order.
Over TCP and TLS a message with no connection id goes on an open connection to its
destination (one from that address, or one aliased to it: the endpoint's `aliases_offered()`,
RFC 5923, checked by the listener), or on a new one of the same transport. It knows no call
logic: events go up, actions come down.

The edge (`guard.py`) sees every input first: banned sources, the per-source rate limit and
the UDP pre-parse drop input before the SIP parser; every message the parser then refuses is
a strike against its source too. Once a second `_reap` closes stream connections that are
slow (a message begun `header_timeout` seconds ago and still not complete: slowloris, or an
inbound connection that sent nothing that long) or idle for `idle_timeout`.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from mediasrv.sip.dialog import Dialog
from mediasrv.sip.endpoint import Destination, Outgoing, SipEndpoint
from mediasrv.sip.events import SipEvent
from mediasrv.sip.message import Request, Response
from mediasrv.sip.transaction import ClientTransaction, ServerTransaction
from mediasrv.transport.guard import Guard
from mediasrv.transport.tcp import TcpListener
from mediasrv.transport.udp import Address, UdpListener

log = logging.getLogger("mediasrv.transport")


class SipDriver:
    def __init__(self, endpoint: SipEndpoint, on_event: Callable[[SipEvent], None],
                 loop: asyncio.AbstractEventLoop, guard: Guard | None = None) -> None:
        self.endpoint = endpoint
        self.on_event = on_event
        self.loop = loop
        self.guard = guard
        self.udp: list[UdpListener] = []
        self.tcp: list[TcpListener] = []  # TCP and TLS listeners (`.transport` names which)
        self.reaped: dict[str, int] = {"slow": 0, "idle": 0}
        self.header_timeout, self.idle_timeout = 10.0, 0.0
        self._timer: asyncio.TimerHandle | None = None
        self._reaper: asyncio.TimerHandle | None = None
        self._flushing = False

    @property
    def now(self) -> float:
        return self.loop.time()

    # ------------------------------------------------------------------ from the sockets

    def on_data(self, data: bytes, source: Address, transport: str, conn_id: int | None,
                local: Address) -> None:
        now = self.loop.time()
        guard = self.guard
        if guard is None:
            self.endpoint.receive(data, source, transport, conn_id, local, now)
        elif guard.admit(data, source[0], conn_id is None, now):
            for _ in range(self.endpoint.receive(data, source, transport, conn_id, local, now)):
                guard.strike(source[0], now)  # each message the parser refused
        elif conn_id is not None and guard.is_banned(source[0], now):
            for lst in self.tcp:
                lst.close_connection(conn_id, abort=True)
            return
        else:
            return
        self.flush()

    def on_closed(self, conn_id: int) -> None:
        self.endpoint.connection_lost(conn_id)
        self.flush()

    def _on_timer(self) -> None:
        self._timer = None
        self.endpoint.handle_timer(self.now)
        self.flush()

    # ------------------------------------------------------------------ from the call layer

    def send_request(self, request: Request, destination: Destination,
                     conn_id: int | None = None) -> ClientTransaction:
        txn = self.endpoint.send_request(request, destination, self.now, conn_id=conn_id)
        self.flush()
        return txn

    def send_response(self, txn: ServerTransaction, response: Response) -> Dialog | None:
        dialog = self.endpoint.send_response(txn, response, self.now)
        self.flush()
        return dialog

    def cancel(self, invite_txn: ClientTransaction) -> None:
        self.endpoint.cancel(invite_txn, self.now)
        self.flush()

    def send_ack_2xx(self, ack: Request, destination: Destination) -> None:
        self.endpoint.send_ack_2xx(ack, destination, self.now)
        self.flush()

    def send_stateless(self, message: Request | Response, destination: Destination) -> None:
        self.endpoint.send_stateless(message, destination)
        self.flush()

    # ------------------------------------------------------------------ the pump

    def flush(self) -> None:
        if self._flushing:
            return  # the running flush picks up what was just queued
        self._flushing = True
        try:
            while True:
                if self.tcp:  # offers come only from stream connections
                    self._take_aliases()
                out = self.endpoint.datagrams_to_send()
                events = self.endpoint.next_events()
                if not out and not events:
                    break
                for item in out:
                    self._send(item)
                for event in events:
                    self._deliver(event)
            for conn_id in self.endpoint.connections_to_close():
                for tcp in self.tcp:
                    tcp.close_connection(conn_id)
        finally:
            self._flushing = False
        self._arm_timer()

    def _take_aliases(self) -> None:
        for offer in self.endpoint.aliases_offered():
            for tcp in self.tcp:
                if tcp.transport == offer.transport and offer.conn_id in tcp.connections:
                    tcp.alias(offer.conn_id, offer.host, offer.port)

    def _deliver(self, event: SipEvent) -> None:
        try:
            self.on_event(event)
        except Exception:  # one call's bug must not stop the SIP pump for every other call
            log.exception("error handling %s", type(event).__name__)

    def _arm_timer(self) -> None:
        """Arm the loop timer for the endpoint's deadline, or keep the one armed when it
        fires no later: an early call finds nothing due and re-arms, while moving the timer
        on every message costs a TimerHandle and a cancelled entry in the loop's heap."""
        deadline = self.endpoint.get_timer()
        timer = self._timer
        if deadline is None:
            if timer is not None:
                timer.cancel()
                self._timer = None
        elif timer is None or timer.when() > deadline:
            if timer is not None:
                timer.cancel()
            self._timer = self.loop.call_at(deadline, self._on_timer)

    def _send(self, item: Outgoing) -> None:
        if item.transport == "udp":
            if self.udp:
                self._udp_for(item.destination).send(item.data, item.destination)
            return
        streams = [t for t in self.tcp if t.transport == item.transport]
        for tcp in streams:
            conn = item.conn_id if item.conn_id in tcp.connections else tcp.find(item.destination)
            if conn is not None and tcp.send(conn, item.data):
                return
        if streams:
            self.loop.create_task(self._connect_and_send(streams[0], item))

    def _udp_for(self, dest: Address) -> UdpListener:
        v6 = ":" in dest[0]
        for udp in self.udp:  # one or two listeners: a loop, not a generator per datagram
            if (":" in udp.local[0]) == v6:
                return udp
        return self.udp[0]

    async def _connect_and_send(self, tcp: TcpListener, item: Outgoing) -> None:
        try:
            conn = await tcp.connect(item.destination)
        except OSError as exc:
            log.warning("%s connect to %s:%s failed: %s", tcp.transport, *item.destination, exc)
            self.endpoint.connection_lost(None, item.destination)  # its transactions fail now
            self.flush()
            return
        tcp.send(conn, item.data)

    # ------------------------------------------------------------------ the edge's housekeeping

    def start_reaper(self, header_timeout: float, idle_timeout: float) -> None:
        """Once a second: close slow and idle stream connections, lift expired bans. The
        timeouts are attributes, so a reload can change them."""
        self.header_timeout, self.idle_timeout = header_timeout, idle_timeout
        self._reap()

    def _reap(self) -> None:
        now, header_timeout, idle_timeout = self.now, self.header_timeout, self.idle_timeout
        if self.guard is not None:
            self.guard.expire(now)
        for tcp in self.tcp:
            for conn in list(tcp.connections.values()):
                began = self.endpoint.partial_since(conn.id)
                silent = conn.inbound and conn.received == 0
                if (began is not None and now - began > header_timeout
                        or silent and now - conn.opened > header_timeout):
                    self.reaped["slow"] += 1
                    log.warning("mediasrv: closed slow %s connection from %s: no complete "
                                "message in %g s", tcp.transport, conn.peer[0], header_timeout)
                    tcp.close_connection(conn.id, abort=True)
                elif idle_timeout and now - conn.last_rx > idle_timeout:
                    self.reaped["idle"] += 1
                    log.info("closed idle %s connection from %s", tcp.transport, conn.peer[0])
                    tcp.close_connection(conn.id)
        self._reaper = self.loop.call_later(1.0, self._reap)

    def close(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self._reaper is not None:
            self._reaper.cancel()
            self._reaper = None
