"""Behind a proxy: mediasrv as one of several media nodes behind Kamailio (deploy/kamailio/).

How this works:

- Identity (RFC 3325 §9.1): a request from a source in `sip.trusted` (the proxy) is not
  challenged. When it carries `P-Asserted-Identity` naming one of our extensions, the proxy has
  authenticated that phone, so the request is served as that extension (its services, language,
  transfer rights); otherwise it is an external party as before. The header is believed only
  from a trusted source: from anyone else it is ignored (§9.1, "trust domain").
- Outbound calls (RFC 3261 §8.1.2): when an extension has no binding here and
  `sip.outbound_proxy` is set, the INVITE goes to the proxy with Request-URI
  `sip:EXT@proxy`; the proxy looks the extension up in its shared location table. Its 404 is
  "not registered" for failover, as a missing binding here would be.
- Replaces across nodes: a phone's two calls may sit on two nodes. An INVITE with Replaces
  from a phone reaches the right node by the proxy's Call-ID -> node table; a REFER whose
  Replaces names a dialog this node does not hold makes the transferred party dial the
  Refer-To user with that Replaces through the proxy (`refer.py`, `B2BUA.dial(replaces=)`),
  and the proxy routes that INVITE the same way.
- Draining (SIGTERM): `Drain.refusal()` answers 503 with Retry-After to a new INVITE and to
  OPTIONS (so the dispatcher's probing marks the node down and its `failure_route` sends the
  caller elsewhere, RFC 3261 §21.5.4). In-dialog requests and INVITEs with Replaces (they take
  over a dialog of a call already here) are still served, so existing calls finish.
"""

from __future__ import annotations

from dataclasses import dataclass

from mediasrv.call.store import BindingRow
from mediasrv.config import Config, Extension
from mediasrv.sip.errors import SipParseError
from mediasrv.sip.message import Request, Response, make_response
from mediasrv.sip.uri import NameAddr, SipUri, split_outside

RETRY_AFTER = 5  # seconds a draining node tells callers to wait (RFC 3261 §20.33)


def asserted_extension(request: Request, config: Config) -> Extension | None:
    """The extension a trusted proxy asserts sent `request`, or None."""
    if request.method == "REGISTER":
        return None
    for value in request.headers.get_all("P-Asserted-Identity"):
        for part in split_outside(value, ","):
            try:
                uri = NameAddr.parse(part.strip()).uri
            except SipParseError:
                continue
            if uri.scheme in ("sip", "sips") and uri.user in config.extensions:
                return config.extensions[uri.user]
    return None


def via_proxy(number: str, config: Config) -> list[BindingRow]:
    """A pseudo-binding sending the call for `number` to the outbound proxy (or none)."""
    if not config.sip.outbound_proxy:
        return []
    proxy = SipUri.parse(config.sip.outbound_proxy)
    host, port = proxy.host_port()
    transport = "tls" if proxy.scheme == "sips" else (proxy.transport or "UDP").lower()
    hostport = f"[{host}]" if ":" in host else host
    suffix = f";transport={transport}" if transport in ("tcp", "tls") else ""
    contact = f"sip:{number}@{hostport}:{port}{suffix}"
    return [BindingRow(number, contact, 0.0, "", 0, 1.0, host, port, transport)]


@dataclass
class Drain:
    """Whether this node takes new calls; `refusal()` is the 503 for one it does not."""

    draining: bool = False

    def refusal(self, request: Request) -> Response | None:
        if not self.draining:
            return None
        if request.method == "OPTIONS" or (request.method == "INVITE"
                                           and "Replaces" not in request.headers):
            return make_response(request, 503, "Draining",
                                 headers=[("Retry-After", str(RETRY_AFTER))])
        return None
