"""SIP transactions: RFC 3261 §17 with the RFC 6026 "Accepted" states.

How this works
--------------
Each of the four transaction kinds is a transition TABLE keyed by ``(state, event)``, with the
state names of §17 (Calling, Proceeding, Completed, Confirmed, Accepted, Trying, Terminated).
A transition names the next state and a tuple of actions; each action is a small ``_do_*``
method. A (state, event) pair missing from the table is absorbed, which is how the RFC
figures treat everything they do not draw (e.g. a 1xx in Completed).

The objects are sans-I/O: time is the ``now`` argument, they never send. The bytes of
messages to transmit (a transaction serialises what it sends, once: a retransmission re-sends
the same bytes) and upward notifications (response for the TU, timeout, transport error,
terminated) queue up until the endpoint takes both with ``drain()``. Each timer (A..M, plus
the 200 ms "100 Trying" timer of §17.2.1) is a named deadline; ``STATE_TIMERS`` says which
timers survive in each state, so entering a state cancels the others. ``next_deadline()``
is the earliest live timer, ``handle_timer(now)`` fires every due timer in order.
Zero-length timers (D, I, J, K on reliable transports) fire on the same call that starts
them. Retransmission timers (A, E, G) are only started on unreliable transports (§17.1.1.2).
Each kind compiles its table once (``_ROWS``): per row the next state, the action functions,
and the timers to cancel, those live in the row's state and not in the next (every action
starts only timers live in the state it leads to, so no other timer can be running; a test
checks the tables for it).

Matching (§17.1.3, §17.2.3) is done with keys: ``client_key(response)`` is (branch, CSeq
method); ``server_key(request)`` is (branch, sent-by, method) with ACK folded onto INVITE.
Requests without the RFC 3261 magic cookie (RFC 2543 peers) fall back to a key made of the
Request-URI-independent identifiers (Call-ID, From tag, CSeq number, top Via).

The ACK for a non-2xx final response is built here (§17.1.1.3); the ACK for a 2xx belongs
to the dialog (§13.2.2.4) and is never sent by a transaction.

Compaction: after its final response a transaction waits out a timer (D, I, J, K, L, M: up
to 64*T1 = 32 s on UDP) in which it only absorbs or re-sends. At hundreds of calls per second
those waiting transactions are most of the live heap, and every full garbage collection walks
it; so once the endpoint has handled the transition into a ``WAITING`` state it calls
``compact()``, which drops the parsed messages (a Request or Response is a handful of
tracked objects) and keeps the key, the identifiers the endpoint still asks for (``method``,
``dialog_ids``, ``in_dialog``, ``to_tag``) and the bytes it may send again. A client
transaction keeps the bytes of its request and parses them again if asked for ``request``
(a 2xx from another fork in Accepted); a server one has nothing more to do with its request
(the INVITE in Accepted may send its 2xx again: the endpoint finds the dialog by the ids).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from enum import Enum
from typing import TYPE_CHECKING, Any, ClassVar

from .message import Headers, Request, Response, make_response, parse_message
from .timers import TRYING_DELAY, TimerConfig

if TYPE_CHECKING:
    from .uri import Via

MAGIC_COOKIE = "z9hG4bK"


class State(Enum):
    """Transaction states, named as in RFC 3261 §17 and RFC 6026 §7."""

    CALLING = "Calling"
    TRYING = "Trying"
    PROCEEDING = "Proceeding"
    COMPLETED = "Completed"
    CONFIRMED = "Confirmed"
    ACCEPTED = "Accepted"
    TERMINATED = "Terminated"

    # Members are singletons compared by identity, so identity hashing is consistent, and
    # it is C: Enum's own __hash__ is a Python call on every table and timer lookup.
    __hash__ = object.__hash__


CALLING, TRYING, PROCEEDING = State.CALLING, State.TRYING, State.PROCEEDING
COMPLETED, CONFIRMED, ACCEPTED = State.COMPLETED, State.CONFIRMED, State.ACCEPTED
TERMINATED = State.TERMINATED


@dataclass(frozen=True, slots=True)
class Transition:
    """One row of a transition table: the next state and the actions to run, in order."""

    to: State
    actions: tuple[str, ...] = ()
    #: the `_do_*` method names of `actions`, spelled once here rather than per message
    methods: tuple[str, ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "methods", tuple(f"_do_{a}" for a in self.actions))


T = Transition
#: events in the tables: "1xx", "2xx", "300-699" (responses received by a client
#: transaction or passed down by the TU to a server one), "INVITE"/"request" (a
#: retransmitted request), "ACK", "timer_<X>", "transport_error".

# RFC 3261 Figure 5 as amended by RFC 6026 Figure 3.
ICT_TABLE: dict[tuple[State, str], Transition] = {
    (CALLING, "timer_A"): T(CALLING, ("retransmit", "restart_A")),
    (CALLING, "timer_B"): T(TERMINATED, ("timeout",)),
    (CALLING, "1xx"): T(PROCEEDING, ("pass_up",)),
    (CALLING, "2xx"): T(ACCEPTED, ("pass_up", "start_M")),
    (CALLING, "300-699"): T(COMPLETED, ("send_ack", "pass_up", "start_D")),
    (CALLING, "transport_error"): T(TERMINATED, ("transport_error",)),
    (PROCEEDING, "1xx"): T(PROCEEDING, ("pass_up",)),
    (PROCEEDING, "2xx"): T(ACCEPTED, ("pass_up", "start_M")),
    (PROCEEDING, "300-699"): T(COMPLETED, ("send_ack", "pass_up", "start_D")),
    (PROCEEDING, "transport_error"): T(TERMINATED, ("transport_error",)),
    (COMPLETED, "300-699"): T(COMPLETED, ("send_ack",)),
    (COMPLETED, "timer_D"): T(TERMINATED),
    (COMPLETED, "transport_error"): T(TERMINATED),
    (ACCEPTED, "2xx"): T(ACCEPTED, ("pass_up",)),
    (ACCEPTED, "timer_M"): T(TERMINATED),
    (ACCEPTED, "transport_error"): T(TERMINATED),
}

# RFC 3261 Figure 6.
NICT_TABLE: dict[tuple[State, str], Transition] = {
    (TRYING, "timer_E"): T(TRYING, ("retransmit", "restart_E")),
    (TRYING, "timer_F"): T(TERMINATED, ("timeout",)),
    (TRYING, "1xx"): T(PROCEEDING, ("pass_up",)),
    (TRYING, "2xx"): T(COMPLETED, ("pass_up", "start_K")),
    (TRYING, "300-699"): T(COMPLETED, ("pass_up", "start_K")),
    (TRYING, "transport_error"): T(TERMINATED, ("transport_error",)),
    (PROCEEDING, "timer_E"): T(PROCEEDING, ("retransmit", "restart_E")),
    (PROCEEDING, "timer_F"): T(TERMINATED, ("timeout",)),
    (PROCEEDING, "1xx"): T(PROCEEDING, ("pass_up",)),
    (PROCEEDING, "2xx"): T(COMPLETED, ("pass_up", "start_K")),
    (PROCEEDING, "300-699"): T(COMPLETED, ("pass_up", "start_K")),
    (PROCEEDING, "transport_error"): T(TERMINATED, ("transport_error",)),
    (COMPLETED, "timer_K"): T(TERMINATED),
    (COMPLETED, "transport_error"): T(TERMINATED),
}

# RFC 3261 Figure 7 as amended by RFC 6026 Figure 5.
IST_TABLE: dict[tuple[State, str], Transition] = {
    (PROCEEDING, "INVITE"): T(PROCEEDING, ("resend_last",)),
    (PROCEEDING, "timer_100"): T(PROCEEDING, ("send_100",)),
    (PROCEEDING, "1xx"): T(PROCEEDING, ("send",)),
    (PROCEEDING, "2xx"): T(ACCEPTED, ("send", "start_L")),
    (PROCEEDING, "300-699"): T(COMPLETED, ("send", "start_G", "start_H")),
    (PROCEEDING, "transport_error"): T(TERMINATED, ("transport_error",)),
    (COMPLETED, "INVITE"): T(COMPLETED, ("resend_last",)),
    (COMPLETED, "timer_G"): T(COMPLETED, ("resend_last", "restart_G")),
    (COMPLETED, "timer_H"): T(TERMINATED, ("timeout",)),
    (COMPLETED, "ACK"): T(CONFIRMED, ("start_I",)),
    (COMPLETED, "transport_error"): T(TERMINATED, ("transport_error",)),
    (CONFIRMED, "timer_I"): T(TERMINATED),
    (ACCEPTED, "2xx"): T(ACCEPTED, ("send",)),
    (ACCEPTED, "ACK"): T(ACCEPTED, ("pass_up",)),
    (ACCEPTED, "timer_L"): T(TERMINATED),
    (ACCEPTED, "transport_error"): T(TERMINATED),
}

# RFC 3261 Figure 8.
NIST_TABLE: dict[tuple[State, str], Transition] = {
    (TRYING, "1xx"): T(PROCEEDING, ("send",)),
    (TRYING, "2xx"): T(COMPLETED, ("send", "start_J")),
    (TRYING, "300-699"): T(COMPLETED, ("send", "start_J")),
    (TRYING, "transport_error"): T(TERMINATED, ("transport_error",)),
    (PROCEEDING, "request"): T(PROCEEDING, ("resend_last",)),
    (PROCEEDING, "1xx"): T(PROCEEDING, ("send",)),
    (PROCEEDING, "2xx"): T(COMPLETED, ("send", "start_J")),
    (PROCEEDING, "300-699"): T(COMPLETED, ("send", "start_J")),
    (PROCEEDING, "transport_error"): T(TERMINATED, ("transport_error",)),
    (COMPLETED, "request"): T(COMPLETED, ("resend_last",)),
    (COMPLETED, "timer_J"): T(TERMINATED),
    (COMPLETED, "transport_error"): T(TERMINATED),
}


def response_class(status: int) -> str:
    """The table event for a response status: "1xx", "2xx" or "300-699"."""
    if 100 <= status < 200:
        return "1xx"
    if 200 <= status < 300:
        return "2xx"
    if 300 <= status < 700:
        return "300-699"
    raise ValueError(f"status {status} is not a SIP final or provisional status")


@dataclass(frozen=True, slots=True)
class Notice:
    """Something a transaction tells its user: kind is "response", "ack", "timeout",
    "transport_error" or "terminated"; message is the response/ACK when there is one."""

    kind: str
    message: Any = None


_TERMINATED = Notice("terminated")  # immutable, so one serves every transaction
_NO_TIMERS: frozenset[str] = frozenset()
#: the table event of each named timer
TIMER_EVENTS = {name: f"timer_{name}" for name in ("A", "B", "D", "E", "F", "G", "H", "I",
                                                   "J", "K", "L", "M", "100")}


_Row = tuple[State, tuple[Callable[..., None], ...], tuple[str, ...]]


def _compile(table: dict[tuple[State, str], Transition], state_timers: dict[State, frozenset[str]],
             kind: type[Transaction]) -> dict[tuple[State, str], _Row]:
    """`table` as `Transaction._ROWS`: the actions as `kind`'s functions, and the timers the
    move cancels (live in the row's state, not in the next one)."""
    rows: dict[tuple[State, str], _Row] = {}
    for (state, event), t in table.items():
        live, after = state_timers.get(state, _NO_TIMERS), state_timers.get(t.to, _NO_TIMERS)
        actions = tuple(getattr(kind, method) for method in t.methods)
        rows[state, event] = (t.to, actions, tuple(sorted(live - after)))
    return rows


class Transaction:
    """Common engine: table lookup, actions, named timers, outbox and notices."""

    TABLE: ClassVar[dict[tuple[State, str], Transition]]
    STATE_TIMERS: ClassVar[dict[State, frozenset[str]]]
    #: TABLE compiled: (state, event) -> (next state, action functions, timers to cancel)
    _ROWS: ClassVar[dict[tuple[State, str], _Row]]
    KIND: ClassVar[str]
    #: states in which the transaction only waits out a timer (see "Compaction")
    WAITING: ClassVar[frozenset[State]]
    # Slots: thousands live at once (most waiting out a timer), one __dict__ less each.
    __slots__ = ("_request", "_request_wire", "method", "dialog_ids", "in_dialog", "reliable",
                 "timers", "key", "state", "peer", "transport", "conn_id", "_outbox",
                 "_notices", "_deadlines", "_interval")

    def __init__(self, request: Request, *, reliable: bool, timers: TimerConfig,
                 key: tuple[str, ...], state: State) -> None:
        self._request: Request | None = request
        self._request_wire: bytes | None = None  # client: the bytes of the request sent
        self.method = request.method
        #: (Call-ID, From tag, CSeq number) of the request
        self.dialog_ids: tuple[str, str, int] = (request.call_id, request.from_tag or "",
                                                 request.cseq[0])
        self.in_dialog = bool(request.to_tag)  # the request carries a To tag
        self.reliable = reliable
        self.timers = timers
        self.key = key
        self.state = state
        # Where the messages go: the request's destination (§18.1.1) or the response address
        # (§18.2.2); set by the endpoint, which also owns the transport and connection id.
        self.peer: tuple[str, int] | None = None
        self.transport = "udp"
        self.conn_id: int | None = None
        # what drain() hands over; None while empty (no list kept by a waiting transaction)
        self._outbox: list[bytes] | None = None
        self._notices: list[Notice] | None = None
        self._deadlines: dict[str, float] = {}
        self._interval = 0.0  # of the kind's one retransmission timer (A, E or G)

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if hasattr(cls, "TABLE"):  # each kind (and subclass) with its own functions
            cls._ROWS = _compile(cls.TABLE, cls.STATE_TIMERS, cls)

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.method} {self.state.value} {self.key[0]}>"

    @property
    def request(self) -> Request:
        """The request that created the transaction (parsed again from its bytes when a
        compacted client transaction is asked for it)."""
        request = self._request
        if request is None:
            if self._request_wire is None:
                raise RuntimeError(f"{self!r} was compacted: its request is gone")
            request = self._request = parse_message(self._request_wire)
            assert isinstance(request, Request)
        return request

    @property
    def compacted(self) -> bool:
        """True once `compact()` dropped the parsed request."""
        return self._request is None

    def drain(self) -> tuple[Sequence[bytes], Sequence[Notice]]:
        """The bytes to send and the notices for the TU since the last call, in order."""
        out, notices = self._outbox, self._notices
        self._outbox = self._notices = None
        return out or (), notices or ()

    def _send(self, data: bytes) -> None:
        if self._outbox is None:
            self._outbox = [data]
        else:
            self._outbox.append(data)

    def _notify(self, notice: Notice) -> None:
        if self._notices is None:
            self._notices = [notice]
        else:
            self._notices.append(notice)

    def compact(self) -> None:
        """In a WAITING state, drop the parsed messages (see "Compaction")."""
        if self.state in self.WAITING:
            self._request = None

    @property
    def terminated(self) -> bool:
        """True once the transaction reached Terminated; it must then be discarded."""
        return self.state is TERMINATED

    # -- time ------------------------------------------------------------------------------
    def next_deadline(self) -> float | None:
        """The earliest pending timer, or None when no timer runs."""
        deadlines = self._deadlines
        return min(deadlines.values()) if deadlines else None

    def handle_timer(self, now: float) -> None:
        """Fire every timer due at `now`, earliest first."""
        deadlines = self._deadlines
        while deadlines:
            name = min(deadlines, key=deadlines.__getitem__)
            if deadlines[name] > now:
                return
            del deadlines[name]
            self._handle(TIMER_EVENTS[name], None, now)

    def transport_error(self, now: float) -> None:
        """The transport could not deliver (or the connection closed, §17.1.4/§17.2.4)."""
        self._handle("transport_error", None, now)

    # -- the table engine ------------------------------------------------------------------
    def _handle(self, event: str, message: Any, now: float) -> bool:
        """Run the transition for `event`; False when the table absorbs it."""
        row = self._ROWS.get((self.state, event))
        if row is None:
            return False
        self.state, actions, cancel = row
        deadlines = self._deadlines
        for name in cancel:
            deadlines.pop(name, None)
        for action in actions:
            action(self, message, now)
        if self.state is TERMINATED:
            deadlines.clear()
            self._notify(_TERMINATED)
        elif deadlines:
            self.handle_timer(now)  # zero-length timers fire at once (reliable transports)
        return True

    def _start(self, name: str, duration: float, now: float) -> None:
        self._deadlines[name] = now + duration

    def _retransmit_in(self, name: str, interval: float, now: float) -> None:
        """(Re)start the retransmission timer `name`; the next interval doubles this one."""
        self._interval = interval
        self._deadlines[name] = now + interval

    # -- actions shared by several tables -------------------------------------------------
    def _do_pass_up(self, message: Any, now: float) -> None:
        self._notify(Notice("ack" if isinstance(message, Request) else "response", message))

    def _do_timeout(self, message: Any, now: float) -> None:
        self._notify(Notice("timeout"))

    def _do_transport_error(self, message: Any, now: float) -> None:
        self._notify(Notice("transport_error"))


class ClientTransaction(Transaction):
    """A client transaction (§17.1): created by sending a request, fed the responses."""

    INITIAL: ClassVar[State]
    RETRANSMIT_TIMER: ClassVar[str]
    __slots__ = ("_ack_wire",)  # ICT: the ACK of its final non-2xx, re-sent for its repeats

    def __init__(self, request: Request, *, reliable: bool, timers: TimerConfig,
                 now: float, key: tuple[str, ...] | None = None) -> None:
        # `key`: the endpoint knows the branch it just wrote, so it need not be read again
        super().__init__(request, reliable=reliable, timers=timers,
                         key=client_key_of_request(request) if key is None else key,
                         state=self.INITIAL)
        self._request_wire = request.to_bytes()
        self._ack_wire: bytes | None = None
        self._send(self._request_wire)
        if not reliable:
            self._retransmit_in(self.RETRANSMIT_TIMER, timers.t1, now)
        self._start("B" if self.KIND == "ICT" else "F", timers.timeout, now)

    def receive_response(self, response: Response, now: float) -> bool:
        """Feed a matching response; False when it was absorbed as a retransmission."""
        return self._handle(response_class(response.status), response, now)

    def _do_retransmit(self, message: Any, now: float) -> None:
        assert self._request_wire is not None
        self._send(self._request_wire)


class InviteClientTransaction(ClientTransaction):
    """INVITE client transaction (ICT), RFC 3261 §17.1.1 and RFC 6026 §7.2."""

    KIND = "ICT"
    TABLE = ICT_TABLE
    INITIAL = CALLING
    RETRANSMIT_TIMER = "A"
    STATE_TIMERS = {
        CALLING: frozenset({"A", "B"}),
        COMPLETED: frozenset({"D"}),
        ACCEPTED: frozenset({"M"}),
    }
    WAITING = frozenset({COMPLETED, ACCEPTED})
    __slots__ = ()

    def _do_restart_A(self, message: Any, now: float) -> None:
        self._retransmit_in("A", 2 * self._interval, now)

    def _do_start_D(self, message: Any, now: float) -> None:
        self._start("D", self.timers.timer_d(self.reliable), now)

    def _do_start_M(self, message: Any, now: float) -> None:
        self._start("M", self.timers.timeout, now)

    def _do_send_ack(self, message: Any, now: float) -> None:
        if self._ack_wire is None:
            self._ack_wire = build_non2xx_ack(self.request, message).to_bytes()
        self._send(self._ack_wire)


class NonInviteClientTransaction(ClientTransaction):
    """Non-INVITE client transaction (NICT), RFC 3261 §17.1.2."""

    KIND = "NICT"
    TABLE = NICT_TABLE
    INITIAL = TRYING
    RETRANSMIT_TIMER = "E"
    STATE_TIMERS = {
        TRYING: frozenset({"E", "F"}),
        PROCEEDING: frozenset({"E", "F"}),
        COMPLETED: frozenset({"K"}),
    }
    WAITING = frozenset({COMPLETED})
    __slots__ = ()

    def _do_restart_E(self, message: Any, now: float) -> None:
        # Trying doubles up to T2; Proceeding retransmits every T2 (§17.1.2.2).
        interval = self.timers.t2 if self.state is PROCEEDING else min(2 * self._interval,
                                                                         self.timers.t2)
        self._retransmit_in("E", interval, now)

    def _do_start_K(self, message: Any, now: float) -> None:
        self._start("K", self.timers.timer_k(self.reliable), now)


class ServerTransaction(Transaction):
    """A server transaction (§17.2): created by a received request, fed the TU's responses.

    ``source`` and ``local`` are the addresses the request came from and arrived on.
    """

    RETRANSMIT_EVENT: ClassVar[str]
    __slots__ = ("source", "local", "last_response", "last_wire", "to_tag")

    def __init__(self, request: Request, *, reliable: bool, timers: TimerConfig,
                 key: tuple[str, ...], state: State) -> None:
        super().__init__(request, reliable=reliable, timers=timers, key=key, state=state)
        self.source: tuple[str, int] | None = None
        self.local: tuple[str, int] | None = None
        self.last_response: Response | None = None  # None again once compacted
        self.last_wire: bytes | None = None  # the bytes of the last response sent
        self.to_tag: str | None = None  # the To tag the transaction answered with

    def compact(self) -> None:
        if self.state in self.WAITING:
            self.last_response = None
            self._request = None

    def receive_request(self, request: Request, now: float) -> bool:
        """Feed a retransmitted request (or the ACK); False when absorbed with no effect."""
        event = "ACK" if request.method == "ACK" else self.RETRANSMIT_EVENT
        return self._handle(event, request, now)

    def accepts(self, status: int) -> bool:
        """True if the TU may send a response with `status` now (e.g. not after the final
        response, except 2xx repeats in Accepted)."""
        return (self.state, response_class(status)) in self.TABLE

    def send_response(self, response: Response, now: float) -> None:
        """The TU answers; raises if the transaction can no longer send this response."""
        if not self._handle(response_class(response.status), response, now):
            raise RuntimeError(f"{self!r} cannot send {response.status} in this state")

    def _do_send(self, message: Any, now: float) -> None:
        self.last_response = message
        self.to_tag = message.to_tag
        self.last_wire = message.to_bytes()
        self._send(self.last_wire)

    def _do_resend_last(self, message: Any, now: float) -> None:
        if self.last_wire is not None:
            self._send(self.last_wire)


class InviteServerTransaction(ServerTransaction):
    """INVITE server transaction (IST), RFC 3261 §17.2.1 and RFC 6026 §7.1."""

    KIND = "IST"
    TABLE = IST_TABLE
    RETRANSMIT_EVENT = "INVITE"
    STATE_TIMERS = {
        PROCEEDING: frozenset({"100"}),
        COMPLETED: frozenset({"G", "H"}),
        CONFIRMED: frozenset({"I"}),
        ACCEPTED: frozenset({"L"}),
    }
    WAITING = frozenset({COMPLETED, CONFIRMED, ACCEPTED})
    __slots__ = ()

    def __init__(self, request: Request, *, reliable: bool, timers: TimerConfig,
                 now: float, key: tuple[str, ...] | None = None) -> None:
        super().__init__(request, reliable=reliable, timers=timers,
                         key=server_key(request) if key is None else key, state=PROCEEDING)
        self._start("100", TRYING_DELAY, now)

    def _do_send(self, message: Any, now: float) -> None:
        super()._do_send(message, now)
        self._deadlines.pop("100", None)  # the TU answered: no automatic 100 (§17.2.1)

    def _do_send_100(self, message: Any, now: float) -> None:
        self._do_send(trying_response(self.request), now)

    def _do_start_G(self, message: Any, now: float) -> None:
        if not self.reliable:
            self._retransmit_in("G", self.timers.t1, now)

    def _do_restart_G(self, message: Any, now: float) -> None:
        self._retransmit_in("G", min(2 * self._interval, self.timers.t2), now)

    def _do_start_H(self, message: Any, now: float) -> None:
        self._start("H", self.timers.timeout, now)

    def _do_start_I(self, message: Any, now: float) -> None:
        self._start("I", self.timers.timer_i(self.reliable), now)

    def _do_start_L(self, message: Any, now: float) -> None:
        self._start("L", self.timers.timeout, now)


class NonInviteServerTransaction(ServerTransaction):
    """Non-INVITE server transaction (NIST), RFC 3261 §17.2.2."""

    KIND = "NIST"
    TABLE = NIST_TABLE
    RETRANSMIT_EVENT = "request"
    STATE_TIMERS = {COMPLETED: frozenset({"J"})}
    WAITING = frozenset({COMPLETED})
    __slots__ = ()

    def __init__(self, request: Request, *, reliable: bool, timers: TimerConfig,
                 now: float, key: tuple[str, ...] | None = None) -> None:
        # `key`: the endpoint looked the request up by it already
        super().__init__(request, reliable=reliable, timers=timers,
                         key=server_key(request) if key is None else key, state=TRYING)

    def _do_start_J(self, message: Any, now: float) -> None:
        self._start("J", self.timers.timer_j(self.reliable), now)


# -- matching (§17.1.3, §17.2.3) ---------------------------------------------------------------
def client_key(response: Response, via: Via | None = None) -> tuple[str, ...]:
    """§17.1.3: a response matches the client transaction by top Via branch + CSeq method.
    `via`: the response's top Via when the caller parsed it already."""
    branch = response.via_branch if via is None else via.params.get("branch")
    return (branch or "", response.cseq[1])


def client_key_of_request(request: Request) -> tuple[str, ...]:
    """The key a client transaction is filed under (the same shape as `client_key`)."""
    return (request.via_branch or "", request.cseq[1])


def server_key(request: Request, via: Via | None = None) -> tuple[str, ...]:
    """§17.2.3: branch + sent-by + method, ACK matching its INVITE; RFC 2543 fallback.
    `via`: the request's top Via when the caller parsed it already."""
    method = "INVITE" if request.method == "ACK" else request.method
    if via is None:
        branch = request.via_branch or ""
        via = request.top_via
    else:
        branch = via.params.get("branch") or ""
    sent_by = f"{via.host}:{via.port or ''}".lower()
    if branch.startswith(MAGIC_COOKIE):
        return (branch, sent_by, method)
    # §17.2.3 fallback for RFC 2543 peers: no unique branch, so use the dialog identifiers.
    return ("2543", request.call_id, request.from_tag or "", str(request.cseq[0]),
            sent_by, method)


# -- messages the transaction layer builds itself ----------------------------------------------
def build_non2xx_ack(invite: Request, response: Response) -> Request:
    """§17.1.1.3: ACK for a 300-699 response, same branch, To from the response."""
    headers = Headers()
    headers.add("Via", invite.headers.get_all("Via")[0])
    for name in ("From", "Call-ID"):
        headers.add(name, invite.headers.get(name) or "")
    headers.add("To", response.headers.get("To") or "")
    headers.add("CSeq", f"{invite.cseq[0]} ACK")
    for route in invite.headers.get_all("Route"):
        headers.add("Route", route)
    headers.add("Max-Forwards", "70")
    return Request("ACK", invite.uri, headers, b"")


def trying_response(request: Request) -> Response:
    """§8.2.6.1: 100 Trying copies Via, From, To (no tag added), Call-ID, CSeq and Timestamp."""
    timestamp = request.headers.get("Timestamp")
    return make_response(request, 100, "Trying",
                         headers=[("Timestamp", timestamp)] if timestamp else ())
