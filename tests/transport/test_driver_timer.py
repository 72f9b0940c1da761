"""The driver's one loop timer: armed at the endpoint's earliest deadline, moved only when an
earlier one comes, harmless when it fires early, gone once nothing is pending."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from mediasrv.sip.endpoint import SipEndpoint
from mediasrv.sip.events import RequestReceived, SipEvent
from mediasrv.sip.message import Headers, Request, make_response
from mediasrv.transport.driver import SipDriver

LOCAL = ("10.0.0.1", 5060)
PEER = ("10.0.0.2", 5060)


class FakeHandle:
    def __init__(self, when: float, callback: Callable[[], None]) -> None:
        self._when, self.callback, self.cancelled = when, callback, False

    def when(self) -> float:
        return self._when

    def cancel(self) -> None:
        self.cancelled = True


class FakeLoop:
    """The part of an event loop the driver's timer uses, with a settable clock."""

    def __init__(self) -> None:
        self.now = 0.0
        self.handles: list[FakeHandle] = []

    def time(self) -> float:
        return self.now

    def call_at(self, when: float, callback: Callable[[], None]) -> FakeHandle:
        handle = FakeHandle(when, callback)
        self.handles.append(handle)
        return handle

    def live(self) -> list[FakeHandle]:
        return [h for h in self.handles if not h.cancelled]

    def fire(self, handle: FakeHandle) -> None:
        self.now = max(self.now, handle.when())
        handle.cancelled = True  # a handle that ran is spent
        handle.callback()


def _driver() -> tuple[SipDriver, FakeLoop, list[SipEvent]]:
    loop, events = FakeLoop(), []
    driver = SipDriver(SipEndpoint({"udp": LOCAL}), events.append, loop)  # type: ignore[arg-type]
    return driver, loop, events


def _options(number: int) -> Request:
    headers = Headers([("From", f"<sip:a@x>;tag=f{number}"), ("To", "<sip:b@y>"),
                       ("Call-ID", f"c{number}"), ("CSeq", "1 OPTIONS")])
    return Request("OPTIONS", "sip:b@10.0.0.2", headers)


def _invite_bytes(branch: str) -> bytes:
    return (f"INVITE sip:b@10.0.0.1 SIP/2.0\r\n"
            f"Via: SIP/2.0/UDP 10.0.0.2:5060;branch={branch}\r\n"
            "From: <sip:a@y>;tag=t1\r\nTo: <sip:b@x>\r\nCall-ID: inv1\r\nCSeq: 1 INVITE\r\n"
            "Max-Forwards: 70\r\nContact: <sip:a@10.0.0.2>\r\nContent-Length: 0\r\n\r\n"
            ).encode()


def test_timer_stays_when_a_later_deadline_comes() -> None:
    driver, loop, _ = _driver()
    driver.send_request(_options(1), (*PEER, "udp"))  # Timer E at 0.5
    loop.now = 0.1
    driver.send_request(_options(2), (*PEER, "udp"))  # Timer E at 0.6: later
    assert [h.when() for h in loop.live()] == [0.5]
    assert len(loop.handles) == 1


def test_timer_moves_when_an_earlier_deadline_comes() -> None:
    driver, loop, _ = _driver()
    driver.send_request(_options(1), (*PEER, "udp"))  # Timer E at 0.5
    loop.now = 0.1
    driver.on_data(_invite_bytes("z9hG4bKi1"), PEER, "udp", None, LOCAL)  # 100 timer at 0.3
    assert [h.when() for h in loop.live()] == [0.1 + 0.2]
    assert loop.handles[0].cancelled


def test_early_fire_after_the_earliest_is_cancelled_sends_nothing_and_rearms() -> None:
    driver, loop, events = _driver()
    sent: list[bytes] = []
    driver.endpoint.datagrams_to_send = _recording(driver.endpoint.datagrams_to_send, sent)
    driver.on_data(_invite_bytes("z9hG4bKi2"), PEER, "udp", None, LOCAL)  # 100 timer at 0.2
    driver.send_request(_options(1), (*PEER, "udp"))  # Timer E at 0.5
    invite = next(e for e in events if isinstance(e, RequestReceived))
    driver.send_response(invite.txn, make_response(invite.request, 180, "Ringing",
                                                    to_tag="x"))  # cancels the 100 timer
    assert driver.endpoint.get_timer() == 0.5
    (armed,) = loop.live()
    assert armed.when() == 0.2  # kept: firing early costs less than moving it every time
    sent.clear()
    loop.fire(armed)
    assert sent == []  # nothing was due at 0.2: no 100 Trying, no retransmission
    assert [h.when() for h in loop.live()] == [0.5]
    loop.fire(loop.live()[0])
    assert [s.split(b" ", 1)[0] for s in sent] == [b"OPTIONS"]  # Timer E, on time


def test_no_timer_left_once_every_transaction_ended() -> None:
    driver, loop, events = _driver()
    driver.on_data(_invite_bytes("z9hG4bKi3"), PEER, "udp", None, LOCAL)
    invite = next(e for e in events if isinstance(e, RequestReceived))
    driver.send_response(invite.txn, make_response(invite.request, 486, "Busy Here",
                                                    to_tag="x"))
    ack = (_invite_bytes("z9hG4bKi3").replace(b"INVITE sip", b"ACK sip", 1)
           .replace(b"CSeq: 1 INVITE", b"CSeq: 1 ACK")
           .replace(b"To: <sip:b@x>", b"To: <sip:b@x>;tag=x"))
    driver.on_data(ack, PEER, "udp", None, LOCAL)  # Confirmed: Timer I (T4)
    while loop.live():
        loop.fire(min(loop.live(), key=FakeHandle.when))
    assert driver.endpoint.transaction_count() == 0
    assert driver.endpoint.get_timer() is None and driver._timer is None
    assert loop.now <= 32.0 + 5.0  # it ended by its own timers (G/H stopped, I ran out)


def _recording(drain: Callable[[], list[Any]], sent: list[bytes]) -> Callable[[], list[Any]]:
    def wrapped() -> list[Any]:
        out = drain()
        sent.extend(item.data for item in out)
        return out
    return wrapped
