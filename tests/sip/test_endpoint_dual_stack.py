"""A dual-stack endpoint writes the listener of the destination's family in its Via."""

from __future__ import annotations

from mediasrv.sip.endpoint import SipEndpoint
from mediasrv.sip.message import Headers, Request, parse_message


def options(uri: str) -> Request:
    return Request("OPTIONS", uri, Headers([
        ("From", "<sip:mediasrv@example.invalid>;tag=1"), ("To", f"<{uri}>"),
        ("Call-ID", "dual"), ("CSeq", "1 OPTIONS")]))


def sent_via(endpoint: SipEndpoint, host: str, transport: str = "udp") -> str:
    uri = f"sip:{'[' + host + ']' if ':' in host else host}:5070"
    endpoint.send_request(options(uri), (host, 5070, transport), 0.0)
    (out,) = endpoint.datagrams_to_send()
    return parse_message(out.data).headers.get("Via") or ""


def test_via_follows_the_destination_family() -> None:
    endpoint = SipEndpoint({"udp": ("127.0.0.1", 5060), "tcp": ("127.0.0.1", 5060)},
                           local_v6={"udp": ("::1", 5062), "tcp": ("::1", 5062)})
    assert sent_via(endpoint, "::1").startswith("SIP/2.0/UDP [::1]:5062;")
    assert sent_via(endpoint, "127.0.0.1").startswith("SIP/2.0/UDP 127.0.0.1:5060;")
    assert sent_via(endpoint, "::1", "tcp").startswith("SIP/2.0/TCP [::1]:5062;")


def test_responses_to_either_listener_are_ours() -> None:
    endpoint = SipEndpoint({"udp": ("127.0.0.1", 5060)}, local_v6={"udp": ("::1", 5062)})
    txn = endpoint.send_request(options("sip:[::1]:5070"), ("::1", 5070, "udp"), 0.0)
    (out,) = endpoint.datagrams_to_send()
    request = parse_message(out.data)
    reply = (f"SIP/2.0 200 OK\r\nVia: {request.headers.get('Via')}\r\n"
             f"From: {request.headers.get('From')}\r\nTo: {request.headers.get('To')};tag=2\r\n"
             "Call-ID: dual\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n").encode()
    endpoint.receive(reply, ("::1", 5070), "udp", None, ("::1", 5062), 0.1)
    events = endpoint.next_events()
    assert any(getattr(e, "txn", None) is txn and getattr(e, "response", None) is not None
               for e in events)
