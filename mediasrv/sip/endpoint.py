"""The SIP endpoint: bytes in, datagrams and events out, one timer (sans-I/O).

How this works
--------------
`SipEndpoint` is the one object the transport adapters and the call layer talk to, in the
shape of aioquic's `QuicConnection`: `receive()` takes what a socket read, the call layer
calls `send_request`/`send_response`/`cancel`/`send_ack_2xx`, and the adapter drains
`datagrams_to_send()`, the call layer drains `next_events()`, and one timer is armed from
`get_timer()` and delivered to `handle_timer(now)`. Nothing here reads a clock or a socket.

Receiving (RFC 3261 §18.2.1, §8.2, §17.2.3, §9.2, §12.2.2; RFC 3581):
- unparsable input is answered 400 with the parser's reason phrase when enough of the
  request parsed (§8.2.6), otherwise dropped, counted and reported (`MalformedDropped`);
- requests get `received`/`rport` on their top Via; retransmissions are absorbed by their
  server transaction; Max-Forwards 0 gets 483, a merged request (§8.2.2.2) 482, an
  in-dialog request for no dialog 481, an out-of-order CSeq 500;
- CANCEL is answered here: 200 (or 481) to the CANCEL and 487 to a pending INVITE, then
  `CancelReceived` tells the call layer;
- ACK for a 2xx is end-to-end (§13.2.2.4): it stops our 2xx retransmissions (§13.3.1.4)
  and becomes `AckReceived`;
- responses whose top Via is not ours are discarded (§18.1.2), the rest go to their client
  transaction (§17.1.3).

Dialogs (§12) are kept in `self.dialogs`: the endpoint creates them from 101-299 responses
to an initial INVITE (ours or theirs), confirms them on 2xx, and forgets them after a
non-2xx final, a BYE, or a 481/408/timeout in the dialog (§12.2.1.2, §15).

Responses are addressed per §18.2.2 (received + rport, or the same TCP connection). TLS is
a stream like TCP (transport name "tls", Via `SIP/2.0/TLS`); the Via of a request we send
over TCP or TLS carries `alias` (RFC 5923 §5) so the peer may reuse our connection. A request
that arrives on a stream with `alias` in its top Via (of that transport) offers its connection
for our requests to its sent-by (port 5060, 5061 for TLS, when none is given):
`aliases_offered()` hands these offers to the adapter, which alone can check that the
connection may speak for that address (RFC 5923 §5.3: its certificate names it).

The adapter's loop, in full::

    endpoint.receive(data, peer, "udp", None, local_addr, loop.time())
    for out in endpoint.datagrams_to_send():   # Outgoing(data, destination, transport, conn_id)
        send it (over TCP: on conn_id, or a connection to destination when conn_id is None)
    for conn_id in endpoint.connections_to_close(): close it after sending
    for alias in endpoint.aliases_offered(): check it, then reuse its connection
    call_layer.handle(endpoint.next_events())
    re-arm one loop.call_at(endpoint.get_timer(), ...) that calls handle_timer(loop.time())
"""

from __future__ import annotations

import heapq
import itertools
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass
from typing import NamedTuple

from .dialog import Dialog, DialogSet
from .errors import SipParseError
from .events import (
    AckReceived,
    AckTimedOut,
    CancelReceived,
    DialogTerminated,
    MalformedDropped,
    RequestReceived,
    ResponseReceived,
    SipEvent,
    TransactionTerminated,
    TransactionTimedOut,
    TransportFailed,
)
from .message import (
    MAX_MESSAGE_SIZE,
    Headers,
    Request,
    Response,
    StreamFramer,
    make_response,
    parse_message,
)
from .timers import TimerConfig
from .transaction import (
    CALLING,
    PROCEEDING,
    TERMINATED,
    ClientTransaction,
    InviteClientTransaction,
    InviteServerTransaction,
    NonInviteClientTransaction,
    NonInviteServerTransaction,
    Notice,
    ServerTransaction,
    Transaction,
    client_key,
    response_class,
    server_key,
)
from .uri import Via, generate_branch, generate_tag

Address = tuple[str, int]
Destination = tuple[str, int, str]
DEFAULT_PORT = 5060


class Outgoing(NamedTuple):
    """Bytes to send. Over TCP, `conn_id` names the connection (None: the adapter picks or
    opens one to `destination`)."""

    data: bytes
    destination: Address
    transport: str
    conn_id: int | None = None


@dataclass(frozen=True, slots=True)
class AliasOffer:
    """Stream connection `conn_id` offers itself for requests to `host`:`port` (RFC 5923):
    the top Via's sent-by (host lower-case, IPv6 without brackets) of a request it carried."""

    conn_id: int
    transport: str
    host: str
    port: int


_DEFAULT_PORTS = {"tcp": DEFAULT_PORT, "tls": 5061}


@dataclass(frozen=True, slots=True)
class EndpointConfig:
    """Timer base values (RFC 3261 Table 4) and the User-Agent/Server string."""

    t1: float = 0.5
    t2: float = 4.0
    t4: float = 5.0
    user_agent: str = "mediasrv"
    min_d: float = 32.0
    max_message_size: int = MAX_MESSAGE_SIZE  # of a message on a stream (§18.3 framing)

    def timers(self) -> TimerConfig:
        """The `TimerConfig` these values make."""
        return TimerConfig(self.t1, self.t2, self.t4, self.min_d)


@dataclass(slots=True)
class _Arrival:
    """Where a received message came from."""

    source: Address
    transport: str
    conn_id: int | None
    local: Address | None


@dataclass(slots=True)
class _Pending2xx:
    """A 2xx to INVITE the UAS core retransmits until the ACK comes (§13.3.1.4)."""

    request: Request  # the INVITE (for AckTimedOut: its transaction drops it)
    response: Response
    out: Outgoing
    interval: float
    next_at: float
    give_up_at: float
    dialog: Dialog | None


class _Received(NamedTuple):
    """A new request's arrival, with its top Via (stamped) and its server key: parsed once
    on the way in, for the transaction and the response address."""

    arrival: _Arrival
    via: Via
    key: tuple[str, ...]


AckKey = tuple[str, str, int]  # (Call-ID, From tag, CSeq number) of an INVITE


class SipEndpoint:
    """One SIP user agent (the B2BUA's both sides): transactions, dialogs and addressing.

    `local` maps each transport ("udp", "tcp", "tls") to the (host, port) written in our Via
    sent-by; `local_v6` does the same for requests sent to IPv6 destinations when the server
    also listens on IPv6. Responses whose top Via is not one of these are discarded (§18.1.2).
    """

    def __init__(self, local: Mapping[str, Address], config: EndpointConfig | None = None,
                 *, local_v6: Mapping[str, Address] | None = None) -> None:
        if not local and not local_v6:
            raise ValueError("an endpoint needs at least one local transport address")
        self.config = config or EndpointConfig()
        self.timers = self.config.timers()
        self.local = {t.lower(): addr for t, addr in (local or local_v6 or {}).items()}
        self.local_v6 = {t.lower(): addr for t, addr in (local_v6 or {}).items()}
        self._sent_by = {f"{_host_part(h)}:{p}".lower()
                         for h, p in [*self.local.values(), *self.local_v6.values()]}
        self.dialogs = DialogSet()
        self.stats: Counter[str] = Counter()
        self._servers: dict[tuple[str, ...], ServerTransaction] = {}
        self._clients: dict[tuple[str, ...], ClientTransaction] = {}
        self._merge_keys: dict[tuple[str, str, int, str], tuple[str, ...]] = {}
        self._framers: dict[int, StreamFramer] = {}
        self._partial: dict[int, float] = {}  # conn id -> when its unfinished message began
        # per INVITE we sent: the 2xx To tags already passed up, with the ACK sent for each
        # (the ACK as a plain tuple: kept for 64*T1, it is one object less for the collector)
        self._acks: dict[AckKey, dict[str, tuple[bytes, Address, str, int | None] | None]] = {}
        self._pending_cancel: set[InviteClientTransaction] = set()
        self._pending_2xx: dict[AckKey, _Pending2xx] = {}
        # A lazy heap of transaction deadlines, so get_timer() stays cheap with many
        # transactions waiting in Completed: (deadline, sequence) entries, live while `_due`
        # still maps their sequence number to a transaction (a rescheduled one gets a new
        # number). The entries hold no object, so the garbage collector stops tracking them.
        self._heap: list[tuple[float, int]] = []
        self._due: dict[int, Transaction] = {}
        self._scheduled: dict[Transaction, tuple[float, int]] = {}  # its live heap entry
        self._sequence = itertools.count()
        self._out: list[Outgoing] = []
        self._events: list[SipEvent] = []
        self._to_close: list[int] = []
        self._aliases: list[AliasOffer] = []
        self._now = 0.0

    # == the adapter's side ========================================================================
    def receive(self, data: bytes, source: Address, transport: str, conn_id: int | None,
                local: Address | None, now: float) -> int:
        """Take bytes read from a socket: one datagram (UDP) or a piece of a stream (TCP).
        Returns how many of its messages were malformed (answered 400 or dropped, as
        `stats` counts them), so the edge can strike their source."""
        self._now = now
        arrival = _Arrival(source, transport.lower(), conn_id, local)
        malformed = 0
        for item in self._frame(data, arrival):
            if isinstance(item, SipParseError):
                self._malformed(item, arrival)
                malformed += 1
                continue
            try:
                if isinstance(item, Request):
                    self._on_request(item, arrival, now)
                else:
                    self._on_response(item, arrival, now)
            except SipParseError as exc:  # a header only read lazily was bad: peer's fault
                exc.partial = item if isinstance(item, Request) else None
                self._malformed(exc, arrival)
                malformed += 1
        return malformed

    def datagrams_to_send(self) -> list[Outgoing]:
        """Everything queued for the network since the last call, in order."""
        out, self._out = self._out, []
        return out

    def connections_to_close(self) -> list[int]:
        """TCP connections whose byte stream can no longer be framed (§18.3)."""
        out, self._to_close = self._to_close, []
        return out

    def aliases_offered(self) -> list[AliasOffer]:
        """Connections offered for reuse (RFC 5923 `alias`) since the last call."""
        out, self._aliases = self._aliases, []
        return out

    def get_timer(self) -> float | None:
        """The one deadline at which `handle_timer` must be called, or None."""
        first = self._first_deadline()
        for p in self._pending_2xx.values():  # a few: each waits for its ACK only
            due = p.next_at if p.next_at < p.give_up_at else p.give_up_at
            if first is None or due < first:
                first = due
        return first

    def handle_timer(self, now: float) -> None:
        """Fire everything due at `now` (transaction timers, 2xx retransmissions)."""
        self._now = now
        while (deadline := self._first_deadline()) is not None and deadline <= now:
            txn = self._due.pop(heapq.heappop(self._heap)[1])
            del self._scheduled[txn]
            txn.handle_timer(now)
            self._flush(txn)
        for key, pending in list(self._pending_2xx.items()):
            self._tick_2xx(key, pending, now)

    def connection_lost(self, conn_id: int | None, remote: Address | None = None) -> None:
        """A TCP connection closed (or could not be opened to `remote`): its transactions
        fail with a transport error (§17.1.4, §17.2.4), and its framing state and pending
        2xx retransmissions are dropped. With `remote`, client transactions not yet bound
        to a connection (no response came back yet) and sent to `remote` fail too."""
        self._framers.pop(conn_id if conn_id is not None else -1, None)
        self._partial.pop(conn_id if conn_id is not None else -1, None)
        for txn in self._all_transactions():
            bound = conn_id is not None and txn.conn_id == conn_id
            unbound = remote is not None and txn.conn_id is None and txn.peer == remote
            if txn.transport != "udp" and (bound or unbound):
                txn.transport_error(self._now)
                self._flush(txn)
        for key, pending in list(self._pending_2xx.items()):
            if pending.out.conn_id == conn_id:
                del self._pending_2xx[key]

    # == the call layer's side =====================================================================
    def partial_since(self, conn_id: int) -> float | None:
        """When the unfinished message buffered for a stream connection began (the `now` of
        its first bytes), or None when nothing is pending: the reaper's slowloris clock."""
        return self._partial.get(conn_id)

    def next_events(self) -> list[SipEvent]:
        """Events since the last call, in the order they happened."""
        out, self._events = self._events, []
        return out

    def transaction_count(self, transport: str | None = None) -> int:
        """Live transactions, or those over `transport` ("udp", "tcp") only (leak
        accounting: 0 once everything settled)."""
        if transport is None:
            return len(self._servers) + len(self._clients)
        return sum(t.transport == transport for t in self._all_transactions())

    def transaction_states(self) -> Counter[str]:
        """How many live transactions are in each state ("Proceeding", "Completed", ...):
        after a load, only states that wait out a timer (§17.1.1.2, §17.2.1) may remain."""
        return Counter(t.state.value for t in self._all_transactions())

    def send_request(self, request: Request, destination: Destination, now: float, *,
                     conn_id: int | None = None) -> ClientTransaction:
        """Send a request in a new client transaction; adds our Via with a new branch.

        `destination` is (host, port, transport). In-dialog requests come from
        `Dialog.create_request`; a 2xx ACK goes through `send_ack_2xx` instead.
        """
        if request.method in ("ACK", "CANCEL"):
            raise ValueError(f"send {request.method} with send_ack_2xx() or cancel()")
        self._now = now
        branch = self._prepare_request(request, destination)
        return self._start_client(request, destination, conn_id, now, (branch, request.cseq[1]))

    def cancel(self, invite_txn: ClientTransaction, now: float) -> ClientTransaction | None:
        """CANCEL our pending INVITE (§9.1). Before any provisional response the CANCEL is
        held back and sent when one arrives; after a final response it is not sent (None)."""
        self._now = now
        if not isinstance(invite_txn, InviteClientTransaction):
            raise ValueError("only an INVITE client transaction can be cancelled")
        if invite_txn.state is CALLING:
            self._pending_cancel.add(invite_txn)
            return None
        if invite_txn.state is not PROCEEDING:
            return None
        return self._send_cancel(invite_txn, now)

    def send_response(self, txn: ServerTransaction, response: Response, now: float,
                      ) -> Dialog | None:
        """Answer a request through its server transaction; returns the dialog the
        response created or belongs to (§12.1.1). A non-100 response without a To tag gets
        one (§8.2.6.2), the same one for every response of the transaction.

        A response the transaction can no longer send (it already sent its final one, e.g.
        a 487 because a CANCEL crossed the call layer's 200) is dropped and counted in
        `stats["late_responses"]`; the call layer learns why from the events."""
        self._now = now
        if not txn.accepts(response.status):
            self.stats["late_responses"] += 1
            return None
        self._complete_response(txn, response)
        txn.send_response(response, now)
        dialog = self._uas_dialog(txn, response)
        if isinstance(txn, InviteServerTransaction) and 200 <= response.status < 300:
            self._start_2xx_retransmit(txn, response, dialog, now)
        self._flush(txn)
        self._reap(dialog)
        return dialog

    def send_ack_2xx(self, ack: Request, destination: Destination, now: float, *,
                     conn_id: int | None = None) -> None:
        """Send the end-to-end ACK for a 2xx (§13.2.2.4, built by `Dialog.create_request`);
        it is re-sent by the endpoint for each retransmission of that 2xx."""
        self._now = now
        if ack.method != "ACK":
            raise ValueError("send_ack_2xx sends ACK requests only")
        transport = destination[2].lower()
        self._prepare_request(ack, destination)
        out = self._queue(ack.to_bytes(), destination[:2], transport, conn_id)
        acks = self._acks.get((ack.call_id, ack.from_tag or "", ack.cseq[0]))
        if acks is not None:
            acks[ack.to_tag or ""] = tuple(out)

    def send_stateless(self, message: Request | Response, destination: Destination, *,
                       conn_id: int | None = None) -> None:
        """Send a message outside any transaction (e.g. a stateless reply or a keep-alive
        OPTIONS nobody retransmits); requests get a Via like any other."""
        transport = destination[2].lower()
        if isinstance(message, Request):
            self._prepare_request(message, destination)
        self._queue(message.to_bytes(), destination[:2], transport, conn_id)

    # == receiving =================================================================================
    def _frame(self, data: bytes, arrival: _Arrival) -> list[Request | Response | SipParseError]:
        if arrival.transport == "udp":
            if not data.strip(b"\r\n"):
                return []  # RFC 5626 §3.5.1 keep-alive
            try:
                return [parse_message(data)]
            except SipParseError as exc:
                return [exc]
        conn_id = arrival.conn_id if arrival.conn_id is not None else -1
        framer = self._framers.get(conn_id)
        if framer is None:
            framer = self._framers[conn_id] = StreamFramer(self.config.max_message_size)
        items = framer.feed(data)
        if framer.should_close:
            del self._framers[conn_id]
            self._to_close.append(conn_id)
        if framer.buffered and not framer.should_close:
            if items or conn_id not in self._partial:
                self._partial[conn_id] = self._now
        else:
            self._partial.pop(conn_id, None)
        return items

    def _malformed(self, error: SipParseError, arrival: _Arrival) -> None:
        request = error.partial
        if isinstance(request, Request) and request.method != "ACK":
            self.stats["malformed_answered"] += 1
            reply = make_response(request, error.status, error.reason[:120],
                                  to_tag=generate_tag())
            self._stamp_via(request, arrival.source)
            self._queue(reply.to_bytes(), self._response_address(request, arrival),
                        arrival.transport, arrival.conn_id)
            return
        self.stats["malformed_dropped"] += 1
        self._events.append(MalformedDropped(arrival.source, error.reason))

    def _on_request(self, request: Request, arrival: _Arrival, now: float) -> None:
        if arrival.conn_id is not None and "alias" in (request.headers.get("Via") or ""):
            self._note_alias(request, arrival.conn_id, arrival.transport)
        top = self._stamp_via(request, arrival.source)
        key = server_key(request, top)
        txn = self._servers.get(key)
        if txn is not None:
            self.stats["retransmissions_absorbed"] += 1
            txn.receive_request(request, now)
            self._flush(txn)
        elif request.method == "ACK":
            self._ack_2xx(request)
        else:
            self._on_new_request(request, _Received(arrival, top, key), now)

    def _on_new_request(self, request: Request, received: _Received, now: float) -> None:
        status = self._request_error(request)
        if status is not None:
            self._reject(request, received, status, now)
            return
        if request.method == "CANCEL":
            self._on_cancel(request, received, now)
            return
        dialog = self.dialogs.for_request(request) if request.to_tag else None
        if request.to_tag:
            status = 481 if dialog is None else dialog.check_request(request)  # §12.2.2
            if status is not None:
                self._reject(request, received, status, now)
                return
        txn = self._new_server(request, received, now)
        self._events.append(RequestReceived(txn, request, dialog))
        self._flush(txn)

    def _request_error(self, request: Request) -> int | None:
        """483 for Max-Forwards 0 (§8.2 with §16.3), 400 for a bad one, 482 for a merged
        request (§8.2.2.2), else None."""
        max_forwards = request.headers.get("Max-Forwards")
        if max_forwards is not None:
            if not max_forwards.isdigit():
                return 400
            if int(max_forwards) == 0:
                return 483
        if not request.to_tag and self._merge_key(request) in self._merge_keys:
            return 482
        return None

    def _on_cancel(self, cancel: Request, received: _Received, now: float) -> None:
        """§9.2: 200 to the CANCEL (481 without a matching INVITE), 487 to the INVITE."""
        invite = self._servers.get(received.key[:-1] + ("INVITE",))
        cancel_txn = self._new_server(cancel, received, now)
        if not isinstance(invite, InviteServerTransaction):
            self.send_response(cancel_txn, make_response(cancel, 481), now)
            return
        to_tag = invite.to_tag or generate_tag()
        self.send_response(cancel_txn, make_response(cancel, 200, to_tag=to_tag), now)
        if invite.state is PROCEEDING:
            self.send_response(invite, make_response(invite.request, 487, to_tag=to_tag), now)
            self._events.append(CancelReceived(invite, cancel))

    def _ack_2xx(self, ack: Request) -> None:
        """An ACK matching no transaction: the end-to-end ACK of a 2xx (§13.3.1.4). Only the
        first one, which stops our 2xx retransmissions, is reported; repeats and ACKs
        for nothing we sent (e.g. a late non-2xx ACK) are counted and dropped."""
        pending = self._pending_2xx.pop((ack.call_id, ack.from_tag or "", ack.cseq[0]), None)
        if pending is None:
            self.stats["stray_acks"] += 1
            return
        self._events.append(AckReceived(ack, self.dialogs.for_request(ack)))

    def _on_response(self, response: Response, arrival: _Arrival, now: float) -> None:
        via = response.top_via
        if f"{via.host}:{via.port or DEFAULT_PORT}".lower() not in self._sent_by:
            self.stats["foreign_via_dropped"] += 1
            return
        txn = self._clients.get(client_key(response, via))
        if txn is None:
            self.stats["stray_responses"] += 1
            return
        if arrival.conn_id is not None:
            txn.conn_id = arrival.conn_id
        if not txn.receive_response(response, now):
            self.stats["retransmissions_absorbed"] += 1
        self._flush(txn)

    # == transactions ==============================================================================
    def _new_server(self, request: Request, received: _Received, now: float,
                    ) -> ServerTransaction:
        kind = InviteServerTransaction if request.method == "INVITE" else \
            NonInviteServerTransaction
        arrival = received.arrival
        txn = kind(request, reliable=arrival.transport != "udp", timers=self.timers, now=now,
                   key=received.key)
        txn.peer = self._response_address(request, arrival, received.via)
        txn.transport, txn.conn_id = arrival.transport, arrival.conn_id
        txn.source, txn.local = arrival.source, arrival.local
        self._servers[txn.key] = txn
        if not request.to_tag:
            self._merge_keys[self._merge_key(request)] = txn.key
        return txn

    def _start_client(self, request: Request, destination: Destination,
                      conn_id: int | None, now: float, key: tuple[str, ...],
                      ) -> ClientTransaction:
        transport = destination[2].lower()
        kind = InviteClientTransaction if request.method == "INVITE" else \
            NonInviteClientTransaction
        txn = kind(request, reliable=transport != "udp", timers=self.timers, now=now, key=key)
        txn.peer, txn.transport, txn.conn_id = destination[:2], transport, conn_id
        self._clients[txn.key] = txn
        if isinstance(txn, InviteClientTransaction):
            self._acks[_ack_key(request)] = {}
        self._flush(txn)
        return txn

    def _reject(self, request: Request, received: _Received, status: int, now: float) -> None:
        """Answer `status` through a server transaction, so retransmissions get it again."""
        self.stats[f"rejected_{status}"] += 1
        txn = self._new_server(request, received, now)
        self.send_response(txn, make_response(request, status), now)

    def _flush(self, txn: Transaction) -> None:
        """Move what a transaction sends to the network queue and its notices to events; then
        it may drop what it no longer needs (`Transaction.compact`)."""
        out, notices = txn.drain()
        for data in out:
            self._queue(data, txn.peer or ("", 0), txn.transport, txn.conn_id)
        for notice in notices:
            self._on_notice(txn, notice)
        self._schedule(txn)
        txn.compact()

    def _schedule(self, txn: Transaction) -> None:
        deadline = None if txn.state is TERMINATED else txn.next_deadline()
        entry = self._scheduled.get(txn)
        if entry is not None and entry[0] == deadline:
            return
        if entry is not None:
            del self._due[entry[1]]
        if deadline is None:
            self._scheduled.pop(txn, None)
            return
        entry = self._scheduled[txn] = (deadline, next(self._sequence))
        self._due[entry[1]] = txn
        heapq.heappush(self._heap, entry)

    def _first_deadline(self) -> float | None:
        """The earliest live transaction deadline; stale heap entries are dropped."""
        heap = self._heap
        while heap:
            deadline, sequence = heap[0]
            if sequence in self._due:
                return deadline
            heapq.heappop(heap)
        return None

    def _on_notice(self, txn: Transaction, notice: Notice) -> None:
        if notice.kind == "response":
            assert isinstance(txn, ClientTransaction)
            self._on_client_response(txn, notice.message)
        elif notice.kind == "ack":
            self._ack_2xx(notice.message)
        elif notice.kind == "timeout":
            self._events.append(TransactionTimedOut(txn))
            self._client_failed(txn)
        elif notice.kind == "transport_error":
            self._events.append(TransportFailed(txn))
            self._client_failed(txn)
        elif notice.kind == "terminated":
            self._forget(txn)

    def _forget(self, txn: Transaction) -> None:
        if isinstance(txn, ServerTransaction):
            self._servers.pop(txn.key, None)
            if not txn.in_dialog:
                self._merge_keys.pop((*txn.dialog_ids, txn.method), None)
            if isinstance(txn, InviteServerTransaction):
                self._end_unanswered_uas_dialog(txn)
        else:
            self._clients.pop(txn.key, None)
        if isinstance(txn, InviteClientTransaction):
            self._acks.pop(txn.dialog_ids, None)
            self._pending_cancel.discard(txn)
            if not txn.in_dialog:  # forks that never answered end with the INVITE
                call_id, from_tag, _ = txn.dialog_ids
                for dialog in self.dialogs.early_of(call_id, from_tag):
                    dialog.handle("300-699")
                    self._reap(dialog)
        self._events.append(TransactionTerminated(txn))

    def _end_unanswered_uas_dialog(self, txn: InviteServerTransaction) -> None:
        """An INVITE that died without a final response (transport error) ends its early
        dialog, which would otherwise never be confirmed nor terminated."""
        last = txn.last_response  # None after a final response (compacted)
        if txn.in_dialog or last is None or last.status >= 200:
            return
        call_id, from_tag, _ = txn.dialog_ids
        dialog = self.dialogs.get((call_id, last.to_tag or "", from_tag))
        if dialog is not None and not dialog.terminated:
            dialog.handle("300-699")
            self._reap(dialog)

    def _all_transactions(self) -> list[Transaction]:
        return [*self._servers.values(), *self._clients.values()]

    # == client side: responses, dialogs, CANCEL ==================================================
    def _on_client_response(self, txn: ClientTransaction, response: Response) -> None:
        acks = self._acks.get(txn.dialog_ids)
        if acks is not None and 200 <= response.status < 300:
            tag = response.to_tag or ""
            if tag in acks:  # a retransmitted 2xx: our ACK was lost, or is not sent yet
                if (sent := acks[tag]) is not None:
                    self._out.append(Outgoing._make(sent))  # §13.2.2.4
                return
            acks[tag] = None
        dialog = self._uac_dialog(txn, response)
        self._events.append(ResponseReceived(txn, response, dialog))
        if txn in self._pending_cancel:
            self._pending_cancel.discard(txn)
            if response.status < 200:
                self._send_cancel(txn, self._now)
        self._reap(dialog)

    def _uac_dialog(self, txn: ClientTransaction, response: Response) -> Dialog | None:
        request, status = txn.request, response.status
        dialog = self.dialogs.for_response(response)
        if dialog is not None:
            dialog.update_from_response(request, response)
            if request.method == "BYE" and status >= 200:
                dialog.handle("BYE")
        elif (request.method == "INVITE" and not request.to_tag and response.to_tag
              and 101 <= status < 300):
            dialog = self.dialogs.add(Dialog.from_uac(request, response))
        if request.method == "INVITE" and not request.to_tag and status >= 300:
            for early in self.dialogs.early_of(request.call_id, request.from_tag or ""):
                early.handle("300-699")
                self._reap(early)
        return dialog

    def _client_failed(self, txn: Transaction) -> None:
        """A timeout or transport error in a dialog ends the dialog (§12.2.1.2)."""
        if isinstance(txn, ClientTransaction) and txn.request.to_tag:
            dialog = self.dialogs.for_sent_request(txn.request)
            if dialog is not None:
                dialog.handle("error")
                self._reap(dialog)

    def _send_cancel(self, invite_txn: ClientTransaction, now: float) -> ClientTransaction:
        """§9.1: same Request-URI, Call-ID, From, To, CSeq number and top Via as the INVITE."""
        invite = invite_txn.request
        headers = Headers([("Via", invite.headers.get_all("Via")[0])])
        for name in ("Max-Forwards", "From", "To", "Call-ID"):
            headers.add(name, invite.headers.get(name) or "")
        headers.add("CSeq", f"{invite.cseq[0]} CANCEL")
        for route in invite.headers.get_all("Route"):
            headers.add("Route", route)
        cancel = Request("CANCEL", invite.uri, headers)
        destination = (*(invite_txn.peer or ("", 0)), invite_txn.transport)
        return self._start_client(cancel, destination, invite_txn.conn_id, now,
                                  (invite_txn.key[0], "CANCEL"))  # the INVITE's branch

    # == server side: dialogs and 2xx retransmission ===============================================
    def _complete_response(self, txn: ServerTransaction, response: Response) -> None:
        if self.config.user_agent and "Server" not in response.headers:
            response.headers.add("Server", self.config.user_agent)
        if response.status == 100 or txn.in_dialog or response.to_tag:
            return
        tag = txn.to_tag or generate_tag()
        response.headers.set("To", f"{response.headers.get('To')};tag={tag}")

    def _uas_dialog(self, txn: ServerTransaction, response: Response) -> Dialog | None:
        """The dialog of a response we send: To tag ours (the request's own To tag in a
        dialog: the response copies it), From tag theirs. A 2xx to an initial INVITE creates
        it; a compacted transaction (a 2xx sent again) only finds it."""
        status, (call_id, from_tag, _) = response.status, txn.dialog_ids
        if not txn.in_dialog and (txn.method != "INVITE" or status < 101):
            return None
        dialog = self.dialogs.get((call_id, response.to_tag or "", from_tag))
        if txn.in_dialog:
            if dialog is not None and txn.method == "BYE" and status >= 200:
                dialog.handle("BYE")
        elif dialog is not None:
            dialog.handle(response_class(status))
        elif status < 300 and not txn.compacted:
            dialog = self.dialogs.add(Dialog.from_uas(txn.request, response))
        return dialog

    def _start_2xx_retransmit(self, txn: InviteServerTransaction, response: Response,
                              dialog: Dialog | None, now: float) -> None:
        key = txn.dialog_ids
        if key in self._pending_2xx:
            return  # the TU re-sent its 2xx itself; keep the running schedule
        out = Outgoing(txn.last_wire or response.to_bytes(), txn.peer or ("", 0),
                       txn.transport, txn.conn_id)
        self._pending_2xx[key] = _Pending2xx(
            txn.request, response, out, self.timers.t1, now + self.timers.t1,
            now + self.timers.timeout, dialog)

    def _tick_2xx(self, key: AckKey, pending: _Pending2xx, now: float) -> None:
        if pending.give_up_at <= now:
            del self._pending_2xx[key]
            self._events.append(AckTimedOut(pending.request, pending.response,
                                            pending.dialog))
        elif pending.next_at <= now:
            self._out.append(pending.out)
            pending.interval = min(2 * pending.interval, self.timers.t2)
            pending.next_at = now + pending.interval

    def _reap(self, dialog: Dialog | None) -> None:
        if dialog is not None and dialog.terminated and self.dialogs.get(dialog.id) is dialog:
            self.dialogs.remove(dialog)
            self._events.append(DialogTerminated(dialog))

    # == addressing ================================================================================
    def _prepare_request(self, request: Request, destination: Destination) -> str:
        """Our Via on top (new branch, rport asked for, RFC 3581 §4), plus Max-Forwards and
        User-Agent when the caller left them out (§8.1.1); returns the branch. The sent-by is
        the listener of the destination's transport and address family."""
        transport = destination[2].lower()
        local = self.local_v6 if self.local_v6 and ":" in destination[0] else self.local
        host, port = local.get(transport) or next(iter(local.values()))
        branch = generate_branch()
        via = f"SIP/2.0/{transport.upper()} {_host_part(host)}:{port};branch={branch};rport"
        if transport in ("tcp", "tls"):
            via += ";alias"  # RFC 5923 §5: the peer may send its requests back on this connection
        request.headers.prepend("Via", via)
        if "Max-Forwards" not in request.headers:
            request.headers.add("Max-Forwards", "70")
        if self.config.user_agent and "User-Agent" not in request.headers:
            request.headers.add("User-Agent", self.config.user_agent)
        return branch

    def _note_alias(self, request: Request, conn_id: int, transport: str) -> None:
        top = request.top_via
        if "alias" in top.params and top.transport.lower() == transport:
            host = top.host.strip("[]").lower()
            port = top.port or _DEFAULT_PORTS.get(transport, DEFAULT_PORT)
            self._aliases.append(AliasOffer(conn_id, transport, host, port))

    @staticmethod
    def _stamp_via(request: Request, source: Address) -> Via:
        """§18.2.1 received, RFC 3581 §4 rport: note where the request really came from.
        A bracketed IPv6 sent-by always gets `received` too, so `received or host` is a
        plain socket address for every reader of the Via. Returns the (stamped) top Via, so
        the caller need not parse it again."""
        vias = request.headers.get_all("Via")
        top = Via.parse(vias[0])
        host, port = source
        if "rport" in top.params:
            top.params["received"] = host
            top.params["rport"] = str(port)
        elif top.host != host:
            top.params["received"] = host
        else:
            return top
        request.headers.set("Via", ", ".join([str(top), *vias[1:]]))
        return top

    @staticmethod
    def _response_address(request: Request, arrival: _Arrival, via: Via | None = None,
                          ) -> Address:
        """§18.2.2: the same connection on TCP; received (+rport) or sent-by on UDP (`via`:
        the request's top Via, when the caller has it parsed)."""
        if arrival.transport != "udp":
            return arrival.source
        if via is None:
            via = request.top_via
        host = via.received or via.host.strip("[]")
        return host, via.rport or via.port or DEFAULT_PORT

    def _queue(self, data: bytes, destination: Address, transport: str,
               conn_id: int | None) -> Outgoing:
        out = Outgoing(data, destination, transport, conn_id)
        self._out.append(out)
        return out

    @staticmethod
    def _merge_key(request: Request) -> tuple[str, str, int, str]:
        number, method = request.cseq
        return (request.call_id, request.from_tag or "", number, method)


def _host_part(host: str) -> str:
    """`host` as written in a Via sent-by or a URI: IPv6 references in brackets (§25.1)."""
    return f"[{host}]" if ":" in host and not host.startswith("[") else host


def _ack_key(request: Request) -> AckKey:
    return (request.call_id, request.from_tag or "", request.cseq[0])

