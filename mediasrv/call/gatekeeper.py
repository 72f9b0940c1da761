"""Who may register and call: digest authentication of extensions, trust of listed sources.

How this works (RFC 3261 §22.1, RFC 7616, RFC 8760): `Gatekeeper.check(request, now)` looks
at the request's source (its top Via `received`/`rport`, stamped by the endpoint). A source in
`sip.trusted` passes as an external party, or as the extension its P-Asserted-Identity names
(a front proxy that authenticated the phone, `proxy_mode.py`). Anyone else must answer a
digest challenge for an extension: without credentials they get 401 with one challenge per
`sip.digest_algorithms` (MD5 by default: SIPp 3.6 and baresip 1.0, like many phones, give up
on any SHA-256 challenge; `["SHA-256", "MD5"]` offers both, preferred first); with a stale
nonce, a fresh challenge with `stale=true`; with wrong ones, 403 "Forbidden" and nothing more.
The digest `uri` may differ from the Request-URI (SIPp's default, which Asterisk also accepts)
unless `sip.digest_uri_check` is on: then a mismatch gets 400 (RFC 2617 §3.2.2.5) and a
warning naming both URIs.
A REGISTER may only bind the extension it authenticated as. Repeated failures from one source
block it for a while (`FailureLimiter`): its requests are dropped unanswered and the block is
logged once.
"""

from __future__ import annotations

import logging
import secrets
from dataclasses import dataclass

from mediasrv.call.proxy_mode import asserted_extension
from mediasrv.config import Config, Extension
from mediasrv.sip.auth import DigestAuthenticator, FailureLimiter, ha1
from mediasrv.sip.errors import SipParseError
from mediasrv.sip.message import Request, Response, make_response

log = logging.getLogger("mediasrv.auth")

DROP = Response(0, "")  # a verdict that answers nothing


@dataclass(frozen=True)
class Verdict:
    """`response` to send instead of serving the request (DROP: send nothing), or the
    authenticated extension (None for a trusted external source)."""

    response: Response | None = None
    extension: Extension | None = None


class Gatekeeper:
    def __init__(self, config: Config, secret: bytes | None = None) -> None:
        self.config = config
        self.digest = DigestAuthenticator(secret or secrets.token_bytes(32), config.sip.realm,
                                          algorithms=config.sip.digest_algorithms)
        self.limiter = FailureLimiter()

    def check(self, request: Request, now: float) -> Verdict:
        source = _source(request)
        if self.config.sip.is_trusted(source):  # a trunk, or a proxy asserting who calls
            return Verdict(extension=asserted_extension(request, self.config))
        if not self.limiter.allow(source, now):
            return Verdict(DROP)
        header = request.headers.get("Authorization")
        if header is None:
            return Verdict(self._challenge(request, now, stale=False))
        try:
            result = self.digest.verify(request, header, self._lookup, now,
                                        check_uri=self.config.sip.digest_uri_check)
        except SipParseError:
            return self._fail(request, source, now, "malformed credentials")
        if result.status == "uri_mismatch":  # a client's mistake, not a guess: no failure count
            log.warning("digest from %s (user %s): %s; 400 (sip.digest_uri_check = true)",
                        source, result.username, result.reason)
            return Verdict(make_response(request, 400, "Digest URI Does Not Match Request-URI"))
        if result.status == "stale":
            return Verdict(self._challenge(request, now, stale=True))
        if not result.ok or result.username not in self.config.extensions:
            return self._fail(request, source, now, result.reason or "unknown user")
        ext = self.config.extensions[result.username]
        if request.method == "REGISTER" and request.to_addr.uri.user != ext.number:
            return Verdict(make_response(request, 403))
        self.limiter.record_success(source)
        return Verdict(extension=ext)

    def _lookup(self, username: str, realm: str, algorithm: str) -> str | None:
        ext = self.config.extensions.get(username)
        if ext is None or realm != self.config.sip.realm:
            return None
        if ext.password:
            return ha1(username, realm, ext.password, algorithm)
        return ext.ha1 if algorithm == "MD5" and ext.ha1 else None

    def _challenge(self, request: Request, now: float, stale: bool) -> Response:
        values = self.digest.challenge(now, stale=stale)
        return make_response(request, 401, headers=[("WWW-Authenticate", v) for v in values])

    def _fail(self, request: Request, source: str, now: float, why: str) -> Verdict:
        if self.limiter.record_failure(source, now):
            log.warning("authentication failures from %s: blocked for a while (%s)", source, why)
        return Verdict(make_response(request, 403))


def _source(request: Request) -> str:
    via = request.top_via
    return via.received or via.host
