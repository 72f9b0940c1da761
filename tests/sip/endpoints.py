"""Two `SipEndpoint`s wired in memory with scripted loss (aioquic `client_and_server` style)."""

from __future__ import annotations

from collections.abc import Callable

from mediasrv.sip.endpoint import Outgoing, SipEndpoint
from mediasrv.sip.events import SipEvent
from mediasrv.sip.message import Headers, Request, parse_message

A_ADDR = ("10.0.0.1", 5060)
B_ADDR = ("10.0.0.2", 5060)


class Pair:
    """Endpoints `a` (the caller) and `b`, a fake clock and a lossy wire.

    `drop(sender, message)` returns True to lose a packet, `duplicate` to deliver it twice;
    `nat` rewrites `a`'s source address as a NAT would. Every delivered or lost packet is
    logged as "a>b INVITE". `bots` are scripted call layers run after each delivery round.
    """

    def __init__(self, *, nat: tuple[str, int] | None = None) -> None:
        self.a = SipEndpoint({"udp": A_ADDR, "tcp": A_ADDR})
        self.b = SipEndpoint({"udp": B_ADDR, "tcp": B_ADDR})
        self.now = 0.0
        self.nat = nat
        self.drop: Callable[[str, object], bool] = lambda sender, message: False
        self.duplicate: Callable[[str, object], bool] = lambda sender, message: False
        self.bots: list[Callable[[Pair], None]] = []
        self.log: list[str] = []
        self.events: dict[str, list[SipEvent]] = {"a": [], "b": []}

    def name(self, ep: SipEndpoint) -> str:
        return "a" if ep is self.a else "b"

    def _route(self, sender: str, out: Outgoing) -> tuple[SipEndpoint, tuple[str, int]]:
        if sender == "a":
            return self.b, self.nat or A_ADDR
        expected = self.nat or A_ADDR
        assert out.destination == expected, f"b sent to {out.destination}, not {expected}"
        return self.a, B_ADDR

    def pump(self) -> None:
        """Deliver queued packets both ways, letting the bots react, until all is quiet."""
        while True:
            for ep in (self.a, self.b):
                self.events[self.name(ep)] += ep.next_events()
            for bot in self.bots:
                bot(self)
            batch = [(self.name(ep), out) for ep in (self.a, self.b)
                     for out in ep.datagrams_to_send()]
            if not batch:
                return
            for sender, out in batch:
                self._deliver(sender, out)

    def _deliver(self, sender: str, out: Outgoing) -> None:
        message = parse_message(out.data)
        label = message.method if isinstance(message, Request) else str(message.status)
        lost = self.drop(sender, message)
        receiver = "b" if sender == "a" else "a"
        self.log.append(f"{sender}>{receiver} {label}{' lost' if lost else ''}")
        if lost:
            return
        target, source = self._route(sender, out)
        conn = 1 if out.transport == "tcp" else None
        for _ in range(2 if self.duplicate(sender, message) else 1):
            target.receive(out.data, source, out.transport, conn, None, self.now)

    def advance(self, until: float) -> None:
        """Run both endpoints' timers in time order up to `until`, pumping after each."""
        self.pump()
        while True:
            timers = [t for t in (self.a.get_timer(), self.b.get_timer()) if t is not None]
            if not timers or min(timers) > until:
                break
            self.now = max(self.now, min(timers))
            for ep in (self.a, self.b):
                if (t := ep.get_timer()) is not None and t <= self.now:
                    ep.handle_timer(self.now)
            self.pump()
        self.now = until

    def take(self, side: str, kind: type) -> list:
        """Remove and return the queued events of `kind` for side "a" or "b"."""
        found = [e for e in self.events[side] if isinstance(e, kind)]
        self.events[side] = [e for e in self.events[side] if not isinstance(e, kind)]
        return found

    def assert_clean(self) -> None:
        """Leak check: no transaction, no dialog, no timer on either side."""
        for ep in (self.a, self.b):
            assert ep.transaction_count() == 0, self.name(ep)
            assert len(ep.dialogs) == 0, self.name(ep)
            assert ep.get_timer() is None, self.name(ep)


def new_request(method: str, *, call_id: str = "c1@10.0.0.1", cseq: int = 1,
                from_tag: str = "alice1", max_forwards: int | None = None,
                extra: tuple[tuple[str, str], ...] = ()) -> Request:
    """An out-of-dialog request from a to b, without Via (the endpoint adds it)."""
    headers = Headers([
        ("From", f"<sip:alice@example.com>;tag={from_tag}"),
        ("To", "<sip:bob@example.com>"),
        ("Call-ID", call_id),
        ("CSeq", f"{cseq} {method}"),
        ("Contact", "<sip:alice@10.0.0.1:5060>"),
        *extra,
    ])
    if max_forwards is not None:
        headers.add("Max-Forwards", str(max_forwards))
    return Request(method, "sip:bob@10.0.0.2", headers)
