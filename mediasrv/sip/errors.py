"""Errors of the SIP core, sorted by who is at fault.

How this works: the peer's fault becomes an exception carrying the SIP status it deserves
(RFC 3261 §8.2, §21.4), so the endpoint can answer it and keep serving other calls.
`SipParseError.partial` carries a request whose start line and dialog-identifying headers
parsed, so a 400 with the reason phrase can still be sent (RFC 3261 §8.2.6, RFC 4475 §3.1.2).
Our own misuse of the API raises ordinary `ValueError`/`TypeError` instead.
"""

from __future__ import annotations

from typing import Any


class SipError(Exception):
    """Base class of every error raised on behalf of a remote peer."""

    status: int = 400

    def __init__(self, reason: str, status: int | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        if status is not None:
            self.status = status


class SipParseError(SipError):
    """A SIP message, URI or header value is malformed.

    `status` is the response to send (400 by default, 413 when too large, 505 for an
    unsupported version, 416 for an unsupported URI scheme); `partial` is the request when
    enough of it parsed to answer it (a `Request`), else None.
    """

    def __init__(self, reason: str, status: int = 400, partial: Any = None) -> None:
        super().__init__(reason, status)
        self.partial = partial

    def __repr__(self) -> str:
        return f"SipParseError({self.reason!r}, status={self.status})"


class SdpParseError(SipParseError):
    """An SDP body is malformed (answered with 400, RFC 3261 §21.4.1)."""


class SdpNegotiationError(SipError):
    """No common codec or no usable media in an offer (answered with 488, RFC 3261 §21.4.26)."""

    status = 488
