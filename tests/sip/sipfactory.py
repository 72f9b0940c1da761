"""Builders of SIP messages for the transaction, dialog and endpoint tests (H2)."""

from __future__ import annotations

from mediasrv.sip.message import Headers, Request, Response, make_response
from mediasrv.sip.uri import generate_branch

ALICE_VIA_HOST = "10.0.0.1"


def request(method: str = "INVITE", *, branch: str | None = None, cseq: int = 1,
            call_id: str = "call-1@10.0.0.1", from_tag: str = "ft1", to_tag: str | None = None,
            via_host: str = ALICE_VIA_HOST, via_port: int = 5060, transport: str = "UDP",
            uri: str = "sip:bob@10.0.0.2", max_forwards: int = 70,
            extra: tuple[tuple[str, str], ...] = ()) -> Request:
    """A request as a phone would send it (one Via, with rport)."""
    branch = branch or generate_branch()
    to = "<sip:bob@example.com>" + (f";tag={to_tag}" if to_tag else "")
    headers = Headers([
        ("Via", f"SIP/2.0/{transport} {via_host}:{via_port};branch={branch};rport"),
        ("Max-Forwards", str(max_forwards)),
        ("From", f"<sip:alice@example.com>;tag={from_tag}"),
        ("To", to),
        ("Call-ID", call_id),
        ("CSeq", f"{cseq} {'INVITE' if method == 'ACK' and cseq else method}"),
        ("Contact", f"<sip:alice@{via_host}:{via_port}>"),
        *extra,
    ])
    if method == "ACK":
        headers.set("CSeq", f"{cseq} ACK")
    return Request(method, uri, headers, b"")


def response(req: Request, status: int, to_tag: str | None = "tt1") -> Response:
    """The UAS's response to `req` (To tag added on everything but 100)."""
    return make_response(req, status, to_tag=None if status == 100 else to_tag)
